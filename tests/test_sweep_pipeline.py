"""The sweep and select stages on the real engine, through DVC, on the tiny profile."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from conftest import dvc, write_params
from efficientnext import search_space


@pytest.mark.slow
def test_sweep_and_select_stages(tiny_repo):
    dvc(tiny_repo, "repro", "select")
    trials = pd.read_csv(tiny_repo / "sweep/trials.csv")
    assert list(trials["number"]) == [0, 1]  # the tiny profile: sweep.n_trials 2
    assert set(trials["state"]) <= {"COMPLETE", "PRUNED", "FAIL"} and "COMPLETE" in set(trials["state"])
    complete = trials[trials["state"] == "COMPLETE"]
    assert complete["macro_f1"].between(0, 1).all() and complete["accuracy"].between(0, 1).all()
    assert (trials["train.image_size"] == 32).all() and (trials["train.seed"] == 42).all()
    assert json.loads((tiny_repo / "sweep/importances.json").read_text())["evaluator"] == "fanova"

    best = yaml.safe_load((tiny_repo / "sweep/best.yaml").read_text())
    assert list(best["params"]) == [row.key for row in search_space.PAPER_SPACE]
    assert json.loads((tiny_repo / "sweep/study.json").read_text())["study_name"].startswith("efficientnext-")
    assert best["value"] == pytest.approx(complete["macro_f1"].max())

    # an evaluate-only change leaves the sweep and select alone; a sweep change reruns them
    write_params(tiny_repo, {"evaluate.batch_size": 8})
    assert not {"sweep", "select"} & set(json.loads(dvc(tiny_repo, "status", "--json").stdout))
    write_params(tiny_repo, {"sweep.n_trials": 4})
    assert {"sweep"} <= set(json.loads(dvc(tiny_repo, "status", "--json").stdout))


def test_train_stage_depends_on_best_yaml():
    from conftest import ROOT

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "sweep/best.yaml" in stages["train"]["deps"]
    assert "sweep/best.yaml" in stages["select"]["outs"]
    assert not any(str(p).startswith("evaluate") for p in stages["sweep"]["params"])


def test_sweep_stage_params_are_exactly_the_keys_a_trial_reads():
    from conftest import ROOT
    from efficientnext.config import ModelParams, TrainParams

    searched = {row.key for row in search_space.PAPER_SPACE}  # a trial sets every row, inactive ones from table 8.4
    final_training_only = {"train.epochs", "train.choices_from", "train.precision"}  # the sweep sets its own
    read = {"data.classes", "augment", "sweep"}
    read |= {f"model.{k}" for k in ModelParams.model_fields} - searched
    read |= {f"train.{k}" for k in TrainParams.model_fields} - searched - final_training_only
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages["sweep"]["params"]) == read
