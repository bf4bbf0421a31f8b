"""The data stages through DVC in a temporary git copy on the tiny profile."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import dvc, write_params

DATA_STAGES = ["generate", "validate", "split", "prepare", "subset"]


def ran(result) -> list[str]:
    return re.findall(r"Running stage '([\w-]+)'", result.stdout)


@pytest.mark.slow
def test_data_stages_rerun_only_what_a_change_touches(tiny_repo):
    assert ran(dvc(tiny_repo, "repro", "prepare", "subset")) == ["check", *DATA_STAGES]
    summary = json.loads((tiny_repo / "metrics/validate.json").read_text())
    assert summary["per_status"]["quarantined"] == 5 and summary["per_status"]["fixed"] == 4
    assert json.loads((tiny_repo / "metrics/subset.json").read_text())["per_class"]["porn"]["target"] == 8
    assert sorted(p.name for p in (tiny_repo / "data/prepared").iterdir()) == ["index.csv", "pixels.u8"]

    again = dvc(tiny_repo, "repro", "prepare", "subset")
    assert ran(again) == [] and "Data and pipelines are up to date." in again.stdout

    lock = yaml.safe_load((tiny_repo / "dvc.lock").read_text())
    assert ran(dvc(tiny_repo, "repro", "--force", "--single-item", "generate")) == ["generate"]
    assert yaml.safe_load((tiny_repo / "dvc.lock").read_text()) == lock  # same params, same bytes

    write_params(tiny_repo, {"split.seed": 7})
    # check re-runs on any params change, but its unchanged output re-runs nothing by itself
    assert ran(dvc(tiny_repo, "repro", "prepare", "subset")) == ["check", "split", "prepare", "subset"]
