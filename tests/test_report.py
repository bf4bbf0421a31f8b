"""The reports: `dvc repro report` on the tiny profile (tables 8.1 and 8.3 of the Markdown are metrics/test.json
at the printed precision, 8.4 is sweep/best.yaml, every figure exists and is not blank, the HTML is
self-contained with the code hidden, a second repro does nothing), a missing artifact as one line, the
ablation report from summaries the library computed, Figure 1 read off the model, and the notebooks as
stored (parameters, no outputs, ruff-clean)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import papermill
import pytest
import yaml
from PIL import Image
from conftest import ROOT, VENV_BIN, dvc, make_repo, run
from test_ablations import fake_run, noisy

from efficientnext import ablations, artifacts, config, paper
from efficientnext.models import create_model
from efficientnext.report import ablation_results, architecture, inputs, render
from efficientnext.train.checkpoint import ModelRecord

pytestmark = pytest.mark.xdist_group("report")


def markdown_tables(markdown: str, heading: str) -> list[list[dict[str, str]]]:
    """The Markdown tables of the section starting at `heading` (up to the next `## `), as rows of cells."""
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    tables, current = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
        elif current:
            header, _, *rows = current
            tables.append([dict(zip(header, row)) for row in rows])
            current = []
    return tables


def figure_files(markdown: str, folder: Path) -> list[Path]:
    return [folder / name for name in re.findall(r"!\[png\]\((\S+\.png)\)", markdown)]


def assert_not_blank(path: Path) -> None:
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, path
    assert pixels.std() > 5, f"{path} is blank"


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    """`dvc repro report` in a fresh tiny copy of the repository."""
    repo = make_repo(tmp_path_factory.mktemp("report") / "repo")
    dvc(repo, "repro", "report")
    return repo


@pytest.mark.slow
def test_tables_8_1_and_8_3_are_test_json_and_8_4_is_best_yaml(reported: Path):
    markdown = (reported / "reports/results.md").read_text()
    test = json.loads((reported / "metrics/test.json").read_text())
    columns = {"Accuracy": "accuracy", "Macro precision": "macro_precision", "Macro recall": "macro_recall",
               "Macro F1": "macro_f1", "ROC-AUC (OvR)": "roc_auc_ovr", "ECE": "ece"}
    (table_8_1,) = markdown_tables(markdown, "## 8.1")
    assert [row["Split"] for row in table_8_1] == ["Validation", "Test"]
    for row, scores in zip(table_8_1, (test["validation"], test)):
        assert set(row) == {"Split", *columns}
        for column, key in columns.items():
            assert row[column] == (f"{scores[key]:.3f}" if scores[key] is not None else "—"), (row["Split"], column)

    (table_8_3,) = markdown_tables(markdown, "## 8.3")
    assert [row["Class"] for row in table_8_3] == list(test["per_class"])
    for row in table_8_3:
        scores = test["per_class"][row["Class"]]
        assert [row["Precision"], row["Recall"], row["F1"], row["Support"]] == [
            f"{scores['precision']:.3f}", f"{scores['recall']:.3f}", f"{scores['f1']:.3f}", str(scores["support"])]

    best = yaml.safe_load((reported / "sweep/best.yaml").read_text())
    trained = yaml.safe_load((reported / "dvclive/params.yaml").read_text())
    (table_8_4,) = markdown_tables(markdown, "## 8.4")
    choice = f"Sweep's choice (trial {best['trial']})"
    assert [row["Key"] for row in table_8_4] == list(trained["source"])
    for row in table_8_4:
        expected = best["params"][row["Key"]]
        if isinstance(expected, bool):
            assert row[choice] == str(expected).lower()
        elif isinstance(expected, float):
            assert float(row[choice]) == pytest.approx(expected, rel=5e-4), row
        else:
            assert row[choice] == str(expected), row
        assert row["From"] == trained["source"][row["Key"]]
        if row["From"] == "sweep":
            assert row["Trained value"] == row[choice], row
    # the tiny profile sets these itself: they trained with its values, not the sweep's
    sources = {row["Key"]: (row["From"], row["Trained value"]) for row in table_8_4}
    assert sources["model.hidden1"] == ("params", "32") and sources["train.image_size"] == ("params", "32")

    assert "**Synthetic data.**" in markdown


@pytest.mark.slow
def test_figures_exist_are_not_blank_and_the_html_is_self_contained(reported: Path):
    markdown = (reported / "reports/results.md").read_text()
    figures = figure_files(markdown, reported / "reports")
    # Figure 1, curves, confusion, ROC, per class, reliability, sweep history, data, and the importances
    # when the tiny trials' values differ (when they tie, fANOVA has no variance to explain: the report says so)
    found = json.loads((reported / "sweep/importances.json").read_text())["importances"]
    assert len(figures) == 8 + bool(found)
    assert sorted(figures) == sorted((reported / "reports/results_files").glob("*.png"))
    for figure in figures:
        assert_not_blank(figure)
    assert ("No importances: fANOVA needs at least 2 complete trials" in markdown) == (not found)

    html = (reported / "reports/results.html").read_text()
    assert html.count("src=\"data:image/png;base64,") == len(figures)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"https?:", html)  # nothing from a CDN
    assert "from efficientnext.report" not in html and "figures.confusion" not in html  # code hidden
    assert "Synthetic data." in html


@pytest.mark.slow
def test_a_second_repro_does_nothing_and_the_executed_notebook_is_nowhere(reported: Path):
    again = dvc(reported, "repro", "report")
    assert "didn't change" in again.stdout and "Running stage" not in again.stdout
    assert sorted(path.name for path in (reported / "reports").iterdir()) == [
        ".gitignore", "ablations.ipynb", "results.html", "results.ipynb", "results.md", "results_files"]


def test_a_missing_artifact_is_one_line_naming_its_stage(tmp_path):
    repo = make_repo(tmp_path / "repo")
    result = run([str(VENV_BIN / "python"), "-m", "stages.report"], repo, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: metrics/test.json not found: it is made by the evaluate stage "
                                     "(`dvc repro evaluate`)")


def test_the_ablation_report_from_library_summaries(tmp_path):
    repo = make_repo(tmp_path / "repo")
    y = np.random.default_rng(3).integers(0, 5, 200)
    variants = {"ablations": [("attention", "eca", "results/ablations/selected", 0.5),
                              ("attention", "none", "results/ablations/attention-none", 0.3)],
                "baselines": [("arch", "efficientnext", "results/ablations/selected", 0.5),
                              ("arch", "transfer", "results/baselines/transfer", 0.6)]}
    for kind, rows in variants.items():
        for _, _, variant, error in rows:
            for seed in (1, 2):
                if not (repo / variant / f"seed{seed}").exists():
                    fake_run(repo, variant, seed, y, noisy(y, error, seed + len(variant)), 90.0 + seed)
        plan = {"kind": kind, "seeds": [1, 2], "significance": 0.05, "bootstrap": 200,
                "reference": "results/ablations/selected",
                "rows": [{"factor": factor, "level": level, "variant": variant,
                          "reference": variant == "results/ablations/selected", "reason": None}
                         for factor, level, variant, _ in rows]}
        if kind == "ablations":
            plan["rows"].append({"factor": "norm", "level": "evonorms0", "variant": None, "reference": False,
                                 "reason": "evonorm_own_activation: model.norm=evonorms0 with model.activation=gelu"})
        artifacts.write_json(repo / ablations.RESULTS / kind / ablations.PLAN, plan)
        summary = ablations.summarize(kind, repo, cost=lambda best: (100_000, 2_000_000),
                                      log=lambda line: None)
        artifacts.write_csv(repo / ablations.RESULTS / kind / ablations.SUMMARY, summary.round(6))

    run([str(VENV_BIN / "python"), "-m", "efficientnext.report.ablation_results"], repo)
    markdown = (repo / "reports/ablations.md").read_text()
    table = markdown_tables(markdown, "## Ablations")[0]
    summary = pd.read_csv(repo / "results/ablations/summary.csv")
    assert [(row["Factor"], row["Level"], row["Verdict"]) for row in table] == list(
        zip(summary["factor"], summary["level"].astype(str), summary["verdict"]))
    for row, (_, line) in zip(table, summary.iterrows()):
        if line["n_seeds"]:
            assert row["Macro F1"] == f"{line['macro_f1_mean']:.3f} ± {line['macro_f1_std']:.3f}"
    assert table[2]["Note"].startswith("evonorm_own_activation")
    baselines = markdown_tables(markdown, "## Baselines")[0]
    assert [row["Level"] for row in baselines] == ["efficientnext", "transfer"]
    figures = figure_files(markdown, repo / "reports")
    assert len(figures) == 4  # per-seed points and accuracy against cost, for each summary
    for figure in figures:
        assert_not_blank(figure)
    assert (repo / "reports/ablations.html").read_text().count("src=\"data:image/png;base64,") == 4

    (repo / "results/baselines/summary.csv").unlink()
    result = run([str(VENV_BIN / "python"), "-m", "efficientnext.report.ablation_results"], repo, check=False)
    assert (result.returncode, result.stderr.strip()) == (2, (
        "error: results/baselines/summary.csv not found: it is made by the Snakefile's baselines target "
        "(`snakemake --cores all baselines`)"))


def test_figure_1_is_read_off_the_model(tiny_params):
    classes = list(tiny_params.data.classes)
    params = config.with_choices(tiny_params, paper.selected_configuration(), source="table 8.4")
    network = create_model(params.model, len(classes))
    record = ModelRecord.capture(network, params, classes, epoch=1, metrics={})
    boxes = architecture.figure_1_boxes(architecture.TrainedModel(record, network.eval()))
    assert [box.title for box in boxes] == ["input", "stem", *(f"stage {i}" for i in range(1, 6)), "projection",
                                            "pooling", "head"]
    size = params.train.image_size
    assert boxes[0].output == f"3×{size}×{size}"
    # the tiny profile's stage table (n, C, s, e, k), with table 8.4's kernel 7 replacing every k
    assert [box.output.split("×")[0] for box in boxes[2:7]] == [str(row[1]) for row in params.model.stages]
    assert [box.lines[2] for box in boxes[2:7]] == [f"stride {row[2]}" for row in params.model.stages]
    assert all(box.lines[1] == "depthwise 7×7" for box in boxes[2:7])
    assert boxes[7].output.startswith(f"{params.model.final_channels}×")
    assert boxes[9].lines == ("dropout 0.1", "linear 128→32", "dropout 0.5", "linear 32→32", "dropout 0.5",
                              "linear 32→5")


@pytest.mark.parametrize("notebook, names", [
    (render.RESULTS_NOTEBOOK, {*inputs.RESULTS, inputs.SYNTHETIC_DATA}),
    (ablation_results.NOTEBOOK, set(ablation_results.ABLATIONS)),
])
def test_notebooks_as_stored(notebook, names):
    path = ROOT / notebook
    assert set(papermill.inspect_notebook(str(path))) == names
    stored = json.loads(path.read_text())
    assert stored["metadata"]["kernelspec"]["name"] == render.KERNEL
    code = [cell for cell in stored["cells"] if cell["cell_type"] == "code"]
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
    lint = subprocess.run([str(VENV_BIN / "nbqa"), "ruff", str(path)], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": f"{VENV_BIN}:/usr/bin:/bin"})
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_a_notebook_with_other_parameters_is_refused():
    with pytest.raises(config.UserError, match="its parameters cell names"):
        render.check_parameters(ROOT / render.RESULTS_NOTEBOOK, {"test_metrics": "metrics/test.json"})
