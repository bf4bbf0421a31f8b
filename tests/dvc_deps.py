"""What each DVC stage's code imports inside efficientnext, transitively (tests/test_dvc_deps.py); a stage
that executes a notebook (the report) also runs the code the notebook's cells import."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def module_file(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def source(path: Path) -> str:
    """A Python file's text, or a notebook's code cells (IPython magics left out)."""
    if path.suffix != ".ipynb":
        return path.read_text()
    cells = [cell["source"] for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]
    lines = "\n".join("".join(cell) if isinstance(cell, list) else cell for cell in cells).splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))


def imported(path: Path) -> set[str]:
    """Project modules `path` imports at any depth (module level, functions and TYPE_CHECKING alike)."""
    names = set()
    for node in ast.walk(ast.parse(source(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "efficientnext":
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.split(".")[0] == "efficientnext")
    return {name for name in names if module_file(name) is not None}


def closure(path: Path) -> set[Path]:
    """`path` and every project file it imports, transitively, with the packages' __init__ files on the way."""
    seen, todo = set(), [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in imported(current):
            parts = name.split(".")
            todo += [f for f in (module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)) if f]
    return seen


def notebooks(stage: str) -> list[Path]:
    """The notebooks among a stage's deps in dvc.yaml (the stage executes them)."""
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].get(stage, {}).get("deps", [])
    return [ROOT / dep for dep in deps if str(dep).endswith(".ipynb")]


def code_deps(stage_script: Path) -> set[str]:
    """The files a stage's script runs: itself, the efficientnext modules it reaches, and those its notebooks
    reach (a notebook itself is a data dep)."""
    files = closure(stage_script).union(*(closure(notebook) for notebook in notebooks(stage_script.stem)))
    return {p.relative_to(ROOT).as_posix() for p in files if p.suffix == ".py"}


if __name__ == "__main__":  # print each stage's code deps, to paste into dvc.yaml
    for script in sorted((ROOT / "stages").glob("*.py")):
        if script.name != "__init__.py":
            print(script.stem, *sorted(code_deps(script)), sep="\n  - ")
