"""Run a report notebook and convert it: papermill executes reports/<name>.ipynb on the artifacts' paths
(its `parameters` cell), then nbconvert writes reports/<name>.html (self-contained: images embedded,
code hidden) and reports/<name>.md with its figures in reports/<name>_files/.

The executed notebook lives in a temporary folder only: it carries start times and durations, so nothing
may depend on it. `run` is the DVC stage `report` (the results report); the Snakefile's ablation report
calls `render` through `python -m efficientnext.report.ablation_results`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2
import nbformat
import papermill
from nbconvert import HTMLExporter, MarkdownExporter

from efficientnext import artifacts
from efficientnext.config import Params, UserError
from efficientnext.paths import RAW
from efficientnext.report.inputs import RESULTS, SYNTHETIC_DATA, parameters, require

KERNEL = "python3"  # papermill needs it named (ipykernel's spec in the project's venv)
RESULTS_NOTEBOOK = Path("reports/results.ipynb")
# JupyterLab's HTML template without the scripts it loads from a CDN (require.js, MathJax, Mermaid): the
# report opens offline, and has no math or diagrams to typeset.
OFFLINE_TEMPLATE = "offline.html.j2"
OFFLINE = jinja2.DictLoader({OFFLINE_TEMPLATE: (
    "{%- extends 'lab/index.html.j2' -%}\n"
    "{%- block html_head_js -%}{%- endblock html_head_js -%}\n"
    "{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}\n"
    "{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}\n"
    # the one blockquote is the synthetic-data banner: it must not read like body text
    "{%- block html_head_css -%}<style>blockquote {background: #fff4d6; border-left: 6px solid #e0a800; "
    "padding: 0.6em 1em;}</style>{%- endblock html_head_css -%}\n")})


@dataclass(frozen=True)
class Outputs:
    """What `render` writes for a notebook."""

    notebook: Path

    @property
    def html(self) -> Path:
        return self.notebook.with_suffix(".html")

    @property
    def markdown(self) -> Path:
        return self.notebook.with_suffix(".md")

    @property
    def figures(self) -> Path:
        return self.notebook.with_name(f"{self.notebook.stem}_files")


def check_parameters(notebook: Path, values: dict[str, str | None]) -> None:
    """The notebook's `parameters` cell must name exactly the values given (papermill only warns)."""
    declared = set(papermill.inspect_notebook(str(notebook)))
    if declared != set(values):
        raise UserError(f"{notebook}: its parameters cell names {sorted(declared)}, the report passes "
                        f"{sorted(values)}")


def move_stderr(node: nbformat.NotebookNode) -> None:
    """Warnings the kernel printed go to the stage's stderr (its log), not into the report."""
    for cell in node.cells:
        for output in [o for o in cell.get("outputs", []) if o.get("name") == "stderr"]:
            print(output["text"], end="", file=sys.stderr)
            cell.outputs.remove(output)


def render(notebook: Path, values: dict[str, str | None]) -> Outputs:
    """Execute `notebook` with `values` (run from the repository root), then write its HTML and Markdown."""
    check_parameters(notebook, values)
    out = Outputs(notebook)
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / notebook.name
        papermill.execute_notebook(str(notebook), str(executed), parameters=values, kernel_name=KERNEL,
                                   cwd=str(Path.cwd()), progress_bar=False)
        node = nbformat.read(executed, as_version=4)
    move_stderr(node)
    hidden = {"exclude_input": True, "exclude_input_prompt": True, "exclude_output_prompt": True}
    title = {"metadata": {"name": notebook.stem}}
    html, _ = HTMLExporter(embed_images=True, extra_loaders=[OFFLINE], template_file=OFFLINE_TEMPLATE,
                           **hidden).from_notebook_node(node, resources=title)
    markdown, resources = MarkdownExporter(**hidden).from_notebook_node(
        node, resources={**title, "output_files_dir": out.figures.name})
    figures_tmp = out.figures.with_name(f".{out.figures.name}.tmp")
    shutil.rmtree(figures_tmp, ignore_errors=True)
    figures_tmp.mkdir(parents=True)
    for name, data in resources["outputs"].items():
        (figures_tmp / Path(name).name).write_bytes(data)
    shutil.rmtree(out.figures, ignore_errors=True)
    figures_tmp.rename(out.figures)
    artifacts.write_text(out.markdown, markdown)
    artifacts.write_text(out.html, html)
    return out


def run(params: Params) -> None:
    """The DVC stage `report`: reports/results.html and .md from the main line's artifacts."""
    require(RESULTS)
    synthetic = params.data.source == "synthetic"
    out = render(RESULTS_NOTEBOOK, {**parameters(RESULTS), SYNTHETIC_DATA: str(RAW) if synthetic else None})
    print(f"report: {out.html}, {out.markdown} (+ {len(list(out.figures.iterdir()))} figures in {out.figures})"
          + (" with the synthetic-data banner" if synthetic else ""), flush=True)
