"""The sweep's study logic with a fake trainer: constraints never train, pruning, NaN trials, budget,
resume after kill -9, two workers on one SQLite study, outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from efficientnext import config
from efficientnext.sweep import outputs, space, storage, study
from sweep_fakes import FakeTrainer, calls, fake_factory

ROOT = Path(__file__).resolve().parents[1]
FEASIBLE = {"model.expand_ratio": 4, "model.norm": "batchnorm", "model.activation": "gelu", "train.optimizer": "adamw"}


def make_params(tmp_path: Path, **sweep) -> config.Params:
    base = config.load(ROOT / "params.yaml")
    values = {"storage": "sqlite:///sweep/study.db", "n_trials": 4, "epochs": 3, "pruner": "none",
              "startup_trials": 2, "start_from_params": False, **sweep}
    return config.with_overrides(base, {f"sweep.{key}": value for key, value in values.items()})


def load(params: config.Params, root: Path) -> optuna.Study:
    return optuna.load_study(study_name=params.sweep.study_name, storage=storage.open_storage(params.sweep, root))


def by_number(s: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return sorted(s.get_trials(), key=lambda t: t.number)


def enqueue_feasible(params: config.Params, root: Path, n: int) -> None:
    """Queue n trials whose constraint keys are feasible (the rest is sampled), so every one trains."""
    s = study.load_study(params.sweep, storage.open_storage(params.sweep, root))
    for _ in range(n):
        s.enqueue_trial(FEASIBLE)


def test_infeasible_trials_are_pruned_with_reason_and_never_trained(tmp_path):
    violations = {
        "expand_ratio_3_to_5": {"model.expand_ratio": 6},
        "evonorm_own_activation": {"model.norm": "evonorms0", "model.activation": "relu"},
        "optimizer_norm_unstable": {"model.norm": "rmsnorm2d", "train.optimizer": "rmsprop"},
        "gn_groups_divide_channels": {"model.norm": "groupnorm", "model.gn_groups": 16},
    }
    params = make_params(tmp_path, n_trials=len(violations) + 1)
    s = study.load_study(params.sweep, storage.open_storage(params.sweep, tmp_path))
    for overrides in violations.values():
        s.enqueue_trial({**FEASIBLE, **overrides})
    s.enqueue_trial({**FEASIBLE, "model.norm": "groupnorm", "model.gn_groups": 8})
    study.work(params, tmp_path, FakeTrainer(tmp_path))

    trials = by_number(load(params, tmp_path))
    assert [t.state for t in trials] == [TrialState.PRUNED] * 4 + [TrialState.COMPLETE]
    for trial, name in zip(trials, violations):
        assert trial.user_attrs["prune_reason"].startswith(f"{name}: ")
        assert trial.intermediate_values == {}
    trained = calls(tmp_path)
    assert len(trained) == 1
    assert (trained[0]["model"]["norm"], trained[0]["model"]["gn_groups"]) == ("groupnorm", 8)


def test_trial_trains_with_overrides_pinned_rows_and_sweep_precision(tmp_path):
    params = make_params(tmp_path, n_trials=1, precision="bf16", fixed={"image_size": 48, "batch_size": 16})
    s = study.load_study(params.sweep, storage.open_storage(params.sweep, tmp_path))
    s.enqueue_trial({**FEASIBLE, "train.lr_head": 1e-3, "model.head_layers": 1})
    study.work(params, tmp_path, FakeTrainer(tmp_path))
    [trained] = calls(tmp_path)
    assert trained["epochs"] == 3
    assert trained["train"]["precision"] == "bf16"
    assert (trained["train"]["image_size"], trained["train"]["batch_size"], trained["train"]["seed"]) == (48, 16, 42)
    assert trained["train"]["lr_head"] == 1e-3 and trained["model"]["head_layers"] == 1
    assert trained["train"]["epochs"] == params.train.epochs  # the sweep passes epochs to fit, params keep theirs
    [trial] = load(params, tmp_path).get_trials()
    assert trial.value == pytest.approx(0.2 + 0.6 * 0.5)
    assert trial.user_attrs["accuracy"] == pytest.approx(0.6) and trial.user_attrs["roc_auc_ovr"] == pytest.approx(0.75)
    assert trial.user_attrs["pinned"] == {"train.seed": 42, "train.image_size": 48, "train.batch_size": 16}


def test_nan_trial_is_failed_and_the_sweep_goes_on(tmp_path):
    params = make_params(tmp_path, n_trials=3)
    s = study.load_study(params.sweep, storage.open_storage(params.sweep, tmp_path))
    s.enqueue_trial({**FEASIBLE, "train.optimizer": "adam"})
    s.enqueue_trial({**FEASIBLE, "train.optimizer": "adam"})
    s.enqueue_trial({**FEASIBLE, "train.optimizer": "adamw"})
    study.work(params, tmp_path, FakeTrainer(tmp_path, nan_optimizer="adam"))
    trials = by_number(load(params, tmp_path))
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].user_attrs["fail_reason"] == "training loss is nan at epoch 1, step 3"


def test_median_pruner_stops_trials_after_an_epoch(tmp_path):
    params = make_params(tmp_path, n_trials=4, pruner="median", pruner_startup=2)
    s = study.load_study(params.sweep, storage.open_storage(params.sweep, tmp_path))
    for lr in (1e-2, 5e-3, 1e-4, 2e-4):  # the last two fall below the median of the first two at epoch 1
        s.enqueue_trial({**FEASIBLE, "train.lr_head": lr})
    study.work(params, tmp_path, FakeTrainer(tmp_path))
    trials = by_number(load(params, tmp_path))
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED] * 2
    for trial in trials[2:]:
        assert list(trial.intermediate_values) == [1]
        assert trial.user_attrs["prune_reason"].startswith("median pruner after epoch 1: macro_f1 0.2")


def test_rerun_resumes_the_study_and_counts_its_trials(tmp_path):
    enqueue_feasible(make_params(tmp_path), tmp_path, 3)
    study.run_sweep(make_params(tmp_path, n_trials=2), 1, tmp_path, fake_factory())
    assert len(calls(tmp_path)) == 2
    study.run_sweep(make_params(tmp_path, n_trials=2), 1, tmp_path, fake_factory())
    assert len(calls(tmp_path)) == 2  # budget spent: nothing new
    s = study.run_sweep(make_params(tmp_path, n_trials=3), 1, tmp_path, fake_factory())
    assert [t.number for t in by_number(s)] == [0, 1, 2] and len(calls(tmp_path)) == 3
    assert all(t.state == TrialState.COMPLETE for t in s.get_trials())


def test_same_seed_same_trials_and_workers_draw_different_ones(tmp_path):
    sequences = []
    for name in ("a", "b"):
        params = make_params(tmp_path / name, n_trials=5, startup_trials=2)
        sequences.append([t.params for t in by_number(study.run_sweep(params, 1, tmp_path / name, fake_factory()))])
    assert sequences[0] == sequences[1]
    assert len({json.dumps(p, sort_keys=True) for p in sequences[0]}) == 5


def test_killed_sweep_restarts_to_exactly_n_trials(tmp_path):
    params = make_params(tmp_path, n_trials=4)
    enqueue_feasible(params, tmp_path, 4)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.dump()))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    worker = subprocess.Popen([sys.executable, str(ROOT / "tests/sweep_fakes.py"), str(tmp_path), str(params_file),
                               "0.5"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until trial 1 is mid-training (trial 0 done)
        if len(calls(tmp_path)) == 2:
            break
        time.sleep(0.1)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    before = by_number(load(params, tmp_path))
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING] + [TrialState.WAITING] * 2

    study.work(params, tmp_path, FakeTrainer(tmp_path))
    trials = by_number(load(params, tmp_path))
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].user_attrs["fail_reason"].endswith(f":{worker.pid} died")


def test_two_workers_share_one_sqlite_study(tmp_path):
    params = make_params(tmp_path, n_trials=6)
    enqueue_feasible(params, tmp_path, 6)
    s = study.run_sweep(params, 2, tmp_path, fake_factory(seconds_per_epoch=0.2))
    trials = by_number(s)
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert len(calls(tmp_path)) == 6
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 6


def test_journal_file_storage(tmp_path):
    params = make_params(tmp_path, n_trials=2, storage="sweep/journal.log")
    s = study.run_sweep(params, 1, tmp_path, fake_factory())
    assert (tmp_path / "sweep/journal.log").is_file() and len(s.get_trials()) == 2


def test_storage_paths_resolve_against_the_root(tmp_path):
    assert storage.local_path("sqlite:///sweep/study.db", tmp_path) == tmp_path / "sweep/study.db"
    assert storage.local_path("sqlite:////abs/study.db", tmp_path) == Path("/abs/study.db")
    assert storage.local_path("sweep/journal.log", tmp_path) == tmp_path / "sweep/journal.log"
    assert storage.local_path("postgresql://user@host/db", tmp_path) is None


def test_outputs(tmp_path):
    params = make_params(tmp_path, n_trials=3)
    s = study.load_study(params.sweep, storage.open_storage(params.sweep, tmp_path))
    s.enqueue_trial({**FEASIBLE, "model.expand_ratio": 6})
    enqueue_feasible(params, tmp_path, 2)
    study.run_sweep(params, 1, tmp_path, fake_factory())

    trials = pd.read_csv(tmp_path / "sweep/trials.csv")
    assert list(trials.columns) == ["number", "state", "macro_f1", "accuracy", "roc_auc_ovr", "duration_s", "reason",
                                    "worker", *(row.key for row in space.SPACE)]
    assert list(trials["number"]) == [0, 1, 2]
    assert list(trials["state"]) == ["PRUNED", "COMPLETE", "COMPLETE"]
    assert trials["reason"][0].startswith("expand_ratio_3_to_5: model.expand_ratio=6 (")
    assert trials["model.expand_ratio"][0] == 6 and trials["train.seed"].tolist() == [42, 42, 42]
    assert (trials["duration_s"] >= 0).all()

    history = pd.read_csv(tmp_path / "sweep/history.csv")
    complete = trials[trials["state"] == "COMPLETE"]["macro_f1"]
    assert history["best_value"].iloc[-1] == pytest.approx(complete.max())
    assert history["best_value"].dropna().is_monotonic_increasing

    found = json.loads((tmp_path / "sweep/importances.json").read_text())
    assert found["evaluator"] == "fanova" and found["complete_trials"] == 2
    assert set(found["importances"]) <= {row.key for row in space.SPACE}
    assert sum(found["importances"].values()) == pytest.approx(1.0)


def test_importances_need_two_complete_trials_with_different_values():
    s = optuna.create_study()
    note = "fANOVA needs at least 2 complete trials with different values"
    assert outputs.importances(s, 0) == {"evaluator": "fanova", "seed": 0, "complete_trials": 0, "importances": {},
                                         "note": note}
    s.optimize(lambda trial: trial.suggest_float("x", 0, 1) * 0 + 0.5, n_trials=3)
    assert outputs.importances(s, 0)["note"] == note and outputs.importances(s, 0)["complete_trials"] == 3


def test_a_new_study_starts_from_the_params_configuration(tmp_path):
    params = make_params(tmp_path, n_trials=2, start_from_params=True)
    s = study.run_sweep(params, 1, tmp_path, fake_factory())
    first = by_number(s)[0]
    assert first.params == space.params_point(params)
    assert first.params["model.kernel_size"] == 7 and first.params["model.attention"] == "eca"
    assert calls(tmp_path)[0]["model"]["kernel_size"] == 7  # it trained with exactly those values
    study.run_sweep(make_params(tmp_path, n_trials=3, start_from_params=True), 1, tmp_path, fake_factory())
    assert [t.params == first.params for t in by_number(load(params, tmp_path))] == [True, False, False]


def test_params_outside_the_space_are_not_enqueued(tmp_path):
    params = config.with_overrides(make_params(tmp_path), {"train.lr_head": 0.5})
    assert space.params_point(params) is None
