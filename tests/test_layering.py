"""The package's layering: the data stages import no torch or timm, and no module-level import circle."""

from __future__ import annotations

import ast
import subprocess
import sys

from dvc_deps import ROOT, module_file


def test_data_stages_and_the_schema_import_no_torch():
    code = ("import sys, efficientnext, efficientnext.config, efficientnext.check, efficientnext.stage, "
            "efficientnext.data.generate, efficientnext.data.validate, efficientnext.data.split, "
            "efficientnext.data.prepare, efficientnext.data.subset; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'timm', 'torchvision'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def module_level_imports(path) -> set[str]:
    """Project modules a file imports at module level (function-level imports break no circle at import)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("efficientnext"):
            names.update(f"{node.module}.{alias.name}" if module_file(f"{node.module}.{alias.name}") else node.module
                         for alias in node.names)
    return {name for name in names if module_file(name) is not None}


def test_no_import_circle():
    modules = {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
               for path in (ROOT / "efficientnext").rglob("*.py")}
    graph = {name: {dep for dep in module_level_imports(path) if dep in modules and dep != name}
             for name, path in modules.items()}
    visiting, done = set(), set()

    def visit(name: str, trail: list[str]) -> None:
        assert name not in visiting, f"import circle: {' -> '.join([*trail, name])}"
        if name in done:
            return
        visiting.add(name)
        for dep in sorted(graph[name]):
            visit(dep, [*trail, name])
        visiting.discard(name)
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
