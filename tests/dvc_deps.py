"""What each DVC stage's code imports inside efficientnext, transitively (tests/test_dvc_deps.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_file(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported(path: Path) -> set[str]:
    """Project modules `path` imports at any depth (module level, functions and TYPE_CHECKING alike)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
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


def code_deps(stage_script: Path) -> set[str]:
    """The files a stage's script runs: itself and the efficientnext modules it reaches."""
    return {p.relative_to(ROOT).as_posix() for p in closure(stage_script)}


if __name__ == "__main__":  # print each stage's code deps, to paste into dvc.yaml
    for script in sorted((ROOT / "stages").glob("*.py")):
        if script.name != "__init__.py":
            print(script.stem, *sorted(code_deps(script)), sep="\n  - ")
