"""dvc.yaml's deps cannot go stale: each stage lists exactly the code its script reaches, and every params
key it lists exists in the schema."""

from __future__ import annotations

import json

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


# Declared keys a run on the synthetic tiny profile cannot read, and why.
READ_ON_OTHER_PATHS = {
    ("generate", "data.root"): "read only for a folder source (written to data/raw/SOURCE.txt)",
    ("train", "sweep.space"): "read only with train.choices_from: paper (the pinned rows)",
    ("train", "sweep.fixed"): "read only with train.choices_from: paper (the pinned rows)",
    # the tiny sweep's two trials draw two configurations; others read these
    ("sweep", "model.transfer"): "read only with model.arch: transfer",
    ("sweep", "train.transfer"): "read only with model.arch: transfer",
    ("sweep", "train.nesterov"): "read only by a trial that draws sgd",
    ("sweep", "train.step_size"): "read only by a trial that draws the step scheduler",
    ("sweep", "train.gamma"): "read only by a trial that draws the step or plateau scheduler",
    ("sweep", "train.plateau_patience"): "read only by a trial that draws the plateau scheduler",
    ("sweep", "train.dice_smooth"): "read only by a trial that draws the dice loss",
}


def covers(entry: str, key: str) -> bool:
    return key == entry or key.startswith(entry + ".")


def params_mismatches(trace_dir) -> dict[str, dict[str, list[str]]]:
    """Per stage, the params keys its run read that dvc.yaml does not list, and the entries it lists that the
    run never read (from the traces `efficientnext.params_trace` writes)."""
    found = {}
    for name, stage in STAGES.items():
        declared = [entry for entry in stage.get("params", []) if isinstance(entry, str)]
        if len(declared) < len(stage.get("params", [])):  # `params.yaml:` (every key): nothing to compare
            continue
        read = json.loads((trace_dir / f"{name}.json").read_text())
        unlisted = [key for key in read if not any(covers(entry, key) for entry in declared)]
        unread = [entry for entry in declared if (name, entry) not in READ_ON_OTHER_PATHS
                  and not any(covers(entry, key) for key in read)]
        if unlisted or unread:
            found[name] = {"read but not listed": unlisted, "listed but not read": unread}
    return found
