"""dvc.yaml's deps cannot go stale: each stage lists exactly the code its script reaches, and every params
key it lists exists in the schema."""

from __future__ import annotations

import pytest
import yaml

from dvc_deps import ROOT, code_deps
from efficientnext import config

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_lists_exactly_the_code_it_runs(name):
    stage = STAGES[name]
    script = f"stages/{name}.py"
    assert stage["cmd"] == f"python -m stages.{name}"
    declared = {dep for dep in stage["deps"] if dep.startswith(("efficientnext/", "stages/"))}
    assert declared == code_deps(ROOT / script)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_params_are_keys_of_the_schema(name):
    dumped = config.Params().dump()
    for entry in STAGES[name].get("params", []):
        if isinstance(entry, dict):  # `params.yaml:` (every key)
            assert list(entry) == ["params.yaml"]
            continue
        node = dumped
        for part in entry.split("."):
            assert isinstance(node, dict) and part in node, f"{name}: {entry} is not a params key"
            node = node[part]


def test_every_stage_script_is_a_stage():
    scripts = {path.stem for path in (ROOT / "stages").glob("*.py") if path.name != "__init__.py"}
    assert scripts == set(STAGES)
