"""The sweep's study logic with a fake trainer: which study a sweep works on (its identity), trial 0 is
table 8.4, infeasible trials are rejected untrained and uncounted, pruning, NaN trials, the budget, resume
after kill -9, two workers on one SQLite study, journal storage, outputs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState
from sweep_fakes import FakeTrainer, calls, f1_for, fake_factory, trained_value

from efficientnext import config, paper, search_space
from efficientnext.config import UserError
from efficientnext.sweep import constraints, identity, outputs, records, select, storage, sweep as sweep_stage

ROOT = Path(__file__).resolve().parents[1]
BASE = config.load(ROOT / "params.yaml")
FEASIBLE = {"model.norm": "batchnorm"}  # no constraint rejects a batchnorm trial
EVONORM_RELU = {"model.norm": "evonorms0", "model.activation": "relu"}
EVONORM_GELU = {"model.norm": "evonorms0", "model.activation": "gelu"}
RMSPROP_RMSNORM = {"model.norm": "rmsnorm2d", "train.optimizer": "rmsprop"}  # feasible: RMSpropTF
PINNED_DEFAULT = {"train.seed": 42, "train.image_size": 64, "train.batch_size": 32}
# Table 8.4 as trial 0 of the extended space: its rows plus the unstated rows active with it.
TABLE_8_4_POINT = {**paper.TABLE_8_4, "model.conv_bias": False, "train.mixup_alpha": 0.0}


def make_params(**sweep) -> config.Params:
    # The recipe rows searched (only image and batch size pinned): the CPU default's recipe pins have their own test.
    values = {"storage": "sqlite:///sweep/study.db", "n_trials": 4, "epochs": 3, "pruner": "none",
              "startup_trials": 2, "start_from_paper": False, "fixed": {"image_size": 64, "batch_size": 32}, **sweep}
    return config.with_overrides(BASE, {f"sweep.{key}": value for key, value in values.items()})


def name_of(params: config.Params, root: Path) -> str:
    return identity.study_name(params, identity.identity(params, root))


def open_study(params: config.Params, root: Path) -> optuna.Study:
    """The study run_sweep would work on (created when new), for enqueueing before it runs."""
    return sweep_stage.load_study(params.sweep, storage.open_storage(params.sweep, root), name_of(params, root))


def load(params: config.Params, root: Path, name: str | None = None) -> optuna.Study:
    return optuna.load_study(study_name=name or name_of(params, root),
                             storage=storage.open_storage(params.sweep, root))


def by_number(s: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return sorted(s.get_trials(), key=lambda t: t.number)


def enqueue(params: config.Params, root: Path, *points: dict) -> None:
    s = open_study(params, root)
    for point in points:
        s.enqueue_trial(point)


def work(params: config.Params, root: Path, trainer: FakeTrainer | None = None) -> None:
    sweep_stage.work(params, root, trainer or FakeTrainer(root), name_of(params, root))


def write_data(root: Path, subset: str, index: str | None = None) -> None:
    (root / "data/prepared").mkdir(parents=True, exist_ok=True)
    (root / "data/subset.csv").write_text(subset)
    if index is not None:
        (root / "data/prepared/index.csv").write_text(index)


# --- infeasible trials: rejected, untrained, not counted ---

def test_infeasible_trials_are_rejected_untrained_and_do_not_count(tmp_path, capsys):
    params = make_params(n_trials=2)
    enqueue(params, tmp_path, EVONORM_RELU, {**FEASIBLE, "train.lr_head": 1e-3}, {**EVONORM_GELU, "train.optimizer": "sgd"},
            EVONORM_GELU, {**RMSPROP_RMSNORM, "train.lr_head": 1e-4})
    work(params, tmp_path)

    trials = by_number(load(params, tmp_path))
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.COMPLETE, TrialState.PRUNED,
                                         TrialState.PRUNED, TrialState.COMPLETE]
    names = {0: "evonorm_own_activation", 2: "evonorm_own_activation", 3: "evonorm_own_activation"}
    for number, name in names.items():
        trial = trials[number]
        assert trial.user_attrs[records.REJECTED_ATTR] == constraints.violation(
            search_space.full_record({**trial.user_attrs["pinned"], **trial.params}, paper.selected_configuration()))
        assert trial.user_attrs["rejected"].startswith(f"{name}: ")
        assert records.PRUNE_REASON_ATTR not in trial.user_attrs
        assert trial.intermediate_values == {} and trial.value is None
    assert "rejected" not in trials[1].user_attrs and "rejected" not in trials[4].user_attrs
    trained = calls(tmp_path)
    assert [trained_value(c, "train.lr_head") for c in trained] == [1e-3, 1e-4]  # only the feasible two trained
    assert (trained_value(trained[1], "model.norm"), trained_value(trained[1], "train.optimizer")) == ("rmsnorm2d", "rmsprop")
    assert sweep_stage.budget_spent(load(params, tmp_path), params.sweep)

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sweep: trial")]
    assert [re.sub(r" in \d+ s$", "", line) for line in lines] == [
        "sweep: trial 0 rejected, evonorm_own_activation: model.norm=evonorms0 with model.activation=relu",
        "sweep: trial 1 macro-F1 0.8000",
        "sweep: trial 2 rejected, evonorm_own_activation: model.norm=evonorms0 with model.activation=gelu",
        "sweep: trial 3 rejected, evonorm_own_activation: model.norm=evonorms0 with model.activation=gelu",
        "sweep: trial 4 macro-F1 0.2000",
    ]


def test_budget_counts_trained_and_running_trials_not_waiting_or_rejected():
    s = optuna.create_study()
    sweep = make_params(n_trials=3).sweep
    dist = {"x": CategoricalDistribution((0, 1))}

    def add(state, **attrs):
        s.add_trial(optuna.create_trial(state=state, params={"x": 0}, distributions=dist, user_attrs=attrs,
                                        value=0.5 if state == TrialState.COMPLETE else None))

    add(TrialState.COMPLETE)
    add(TrialState.PRUNED, rejected="evonorm_own_activation: ...")
    add(TrialState.FAIL)
    s.enqueue_trial({"x": 1})  # WAITING
    assert not sweep_stage.budget_spent(s, sweep)
    add(TrialState.PRUNED, prune_reason="median pruner after epoch 1: macro_f1 0.1000")
    assert sweep_stage.budget_spent(s, sweep)
    assert not sweep_stage.budget_spent(s, make_params(n_trials=None, timeout=60).sweep)  # timeout only
    for _ in range(sweep_stage.MAX_REJECTED_PER_TRIAL * 3 - 1):  # 60 rejections in all for n_trials 3
        add(TrialState.PRUNED, rejected="evonorm_own_activation: ...")
    with pytest.raises(UserError) as err:
        sweep_stage.budget_spent(s, sweep)
    assert str(err.value) == ("sweep: 60 trials rejected by the constraints (see sweep/trials.csv); "
                              "widen the space or loosen sweep.fixed")


def test_a_space_that_rejects_every_draw_stops_with_one_line(tmp_path):
    params = make_params(n_trials=1, fixed={"norm": "evonorms0", "activation": "relu"})
    with pytest.raises(UserError) as err:
        work(params, tmp_path)
    assert str(err.value) == ("sweep: 20 trials rejected by the constraints (see sweep/trials.csv); "
                              "widen the space or loosen sweep.fixed")
    trials = load(params, tmp_path).get_trials()
    assert len(trials) == sweep_stage.MAX_REJECTED_PER_TRIAL * 1 == 20
    assert all("rejected" in t.user_attrs for t in trials) and calls(tmp_path) == []


def test_the_all_rejected_error_points_at_a_trials_csv_that_exists(tmp_path):
    params = make_params(n_trials=1, fixed={"norm": "evonorms0", "activation": "relu"})
    with pytest.raises(UserError, match="see sweep/trials.csv"):
        sweep_stage.run_sweep(params, 1, tmp_path, fake_factory())
    trials = pd.read_csv(tmp_path / "sweep/trials.csv")
    assert list(trials["state"]) == ["REJECTED"] * 20


def test_the_all_rejected_error_is_one_line_with_several_workers(tmp_path):
    params = make_params(n_trials=1, fixed={"norm": "evonorms0", "activation": "relu"})
    with pytest.raises(UserError, match=r"^sweep: \d+ trials rejected by the constraints"):
        sweep_stage.run_sweep(params, 2, tmp_path, fake_factory())


# --- what a trial trains ---

def test_trial_trains_its_full_record_pinned_rows_and_the_sweep_precision(tmp_path):
    # params.yaml sets hidden2 itself; the trial's record (table 8.4's for an inactive row) still decides it
    params = config.with_overrides(make_params(n_trials=1, precision="bf16", fixed={"image_size": 48, "batch_size": 16}),
                                   {"model.hidden2": 256})
    enqueue(params, tmp_path, {**FEASIBLE, "train.lr_head": 1e-3, "model.head_layers": 1, "train.loss": "ce"})
    work(params, tmp_path)
    [trained] = calls(tmp_path)
    assert trained["epochs"] == 3 and trained["train"]["epochs"] == params.train.epochs == 8
    assert trained["train"]["precision"] == "bf16"
    assert (trained["train"]["image_size"], trained["train"]["batch_size"], trained["train"]["seed"]) == (48, 16, 42)
    assert trained["train"]["lr_head"] == 1e-3 and trained["model"]["head_layers"] == 1
    # inactive rows train table 8.4's (or the unstated) values
    assert trained["model"]["hidden2"] == 512 and trained["model"]["dropout_head2"] == 0.5
    assert (trained["train"]["focal_alpha"], trained["train"]["focal_gamma"], trained["model"]["gn_groups"]) == (0.25, 2.0, 8)
    assert trained["from_sweep"] == []  # every searched key has its trial value
    [trial] = load(params, tmp_path).get_trials()
    for key, value in trial.params.items():
        assert trained_value(trained, key) == value
    assert trial.value == pytest.approx(0.8)
    assert trial.user_attrs["accuracy"] == pytest.approx(0.9) and trial.user_attrs["roc_auc_ovr"] == pytest.approx(0.9)
    assert trial.user_attrs["pinned"] == {"train.seed": 42, "train.image_size": 48, "train.batch_size": 16}
    assert trial.user_attrs["worker"] == f"{socket.gethostname()}:{os.getpid()}"


def test_nan_trial_is_failed_counts_and_the_sweep_goes_on(tmp_path, capsys):
    params = make_params(n_trials=3)
    enqueue(params, tmp_path, {**FEASIBLE, "train.optimizer": "adam"}, {**FEASIBLE, "train.optimizer": "adam"},
            {**FEASIBLE, "train.optimizer": "adamw", "train.lr_head": 1e-3}, {**FEASIBLE, "train.optimizer": "adamw"})
    work(params, tmp_path, FakeTrainer(tmp_path, nan_optimizer="adam"))
    trials = by_number(load(params, tmp_path))
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE, TrialState.WAITING]
    assert trials[0].user_attrs["fail_reason"] == "training loss is nan at epoch 1, step 3"
    assert "rejected" not in trials[0].user_attrs and len(calls(tmp_path)) == 3
    lines = [re.sub(r" in \d+ s$", "", line) for line in capsys.readouterr().out.splitlines()]
    assert lines == ["sweep: trial 0 fail", "sweep: trial 1 fail", "sweep: trial 2 macro-F1 0.8000"]


def test_median_pruner_stops_trials_after_an_epoch(tmp_path, capsys):
    params = make_params(n_trials=4, pruner="median", pruner_startup=2)
    # epoch-1 F1 0.4 and 0.34 set the median; 1e-4 (0.2) and 2e-4 (0.26) fall below it
    enqueue(params, tmp_path, *({**FEASIBLE, "train.lr_head": lr} for lr in (1e-3, 5e-4, 1e-4, 2e-4)))
    work(params, tmp_path)
    trials = by_number(load(params, tmp_path))
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED] * 2
    assert [t.user_attrs["prune_reason"] for t in trials[2:]] == [
        f"median pruner after epoch 1: macro_f1 {f1_for(1e-4, 1, 3):.4f}",
        f"median pruner after epoch 1: macro_f1 {f1_for(2e-4, 1, 3):.4f}"]
    assert trials[2].user_attrs["prune_reason"] == "median pruner after epoch 1: macro_f1 0.2000"
    for trial in trials[2:]:
        assert list(trial.intermediate_values) == [1] and "rejected" not in trial.user_attrs
    assert len(calls(tmp_path)) == 4  # pruned trials trained, and count
    lines = [re.sub(r" in \d+ s$", "", line) for line in capsys.readouterr().out.splitlines()]
    assert lines[2:] == ["sweep: trial 2 pruned", "sweep: trial 3 pruned"]


def test_timeout_alone_bounds_the_sweep(tmp_path):
    params = make_params(n_trials=None, timeout=1.0, epochs=2)
    work(params, tmp_path, FakeTrainer(tmp_path, seconds_per_epoch=0.2))  # a trial takes 0.4 s
    trials = load(params, tmp_path).get_trials()
    assert 1 <= len(trials) <= 3 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len(calls(tmp_path)) == len(trials)


def test_cli_refuses_zero_workers_in_one_line(capsys):
    from efficientnext import cli

    assert cli.main(["sweep", "--params", str(ROOT / "params.yaml"), "--workers", "0"]) == 2
    assert capsys.readouterr().err == "error: --workers = 0: give 1 or more worker processes\n"


# --- which study: the identity ---

def test_study_name_is_the_prefix_and_a_digest_of_the_identity(tmp_path):
    params = make_params()
    record = identity.identity(params, tmp_path)
    assert list(record) == ["data", "search", "space", "constraints", "trial_base"]
    assert record["data"] == {"data/subset.csv": None, "data/prepared/index.csv": None}
    assert record["space"] == search_space.table("extended")
    assert record["constraints"] == [c.name for c in constraints.CONSTRAINTS] == ["evonorm_own_activation"]
    assert record["search"]["n_trials"] == 4 and record["search"]["fixed"] == {"image_size": 64, "batch_size": 32}
    assert not set(search_space.SEARCHED_KEYS) & set(record["trial_base"])
    assert record["trial_base"]["model.stages"] == params.dump()["model"]["stages"]
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
    assert identity.study_name(params, record) == f"efficientnext-{digest}"
    assert re.fullmatch(r"efficientnext-[0-9a-f]{12}", name_of(params, tmp_path))

    write_data(tmp_path, "path,label,part\na.jpg,porn,train\n", "index\n")
    data = identity.identity(params, tmp_path)["data"]
    assert data == {"data/subset.csv": hashlib.sha256(b"path,label,part\na.jpg,porn,train\n").hexdigest(),
                    "data/prepared/index.csv": hashlib.sha256(b"index\n").hexdigest()}


SAME_STUDY = {"sweep.workers": 4, "sweep.storage": "sweep/journal.log", "sweep.heartbeat": None,
              "train.epochs": 30, "train.choices_from": "paper", "train.precision": "bf16",
              "model.attention": "se",  # a searched key: every trial sets its own
              "evaluate.batch_size": 8, "select.metric": "accuracy", "sweep.fixed": {"batch_size": 32, "image_size": 64}}
NEW_STUDY = {"sweep.n_trials": 5, "sweep.epochs": 2, "sweep.space": "paper", "sweep.timeout": 3600.0,
             "sweep.pruner": "halving", "sweep.sampler_seed": 7, "sweep.startup_trials": 3, "sweep.precision": "bf16",
             "sweep.start_from_paper": True, "sweep.fixed": {"image_size": 64}, "train.momentum": 0.8,
             "augment.rotation": 5.0, "model.stages": [[1, 16, 2, 4, 3], [1, 64, 1, 4, 3]],
             "data.classes": ["hentai", "porn", "sexy"]}  # keeps evaluate.unsafe_classes valid


def test_the_constraints_are_part_of_the_identity(tmp_path, monkeypatch):
    params = make_params()
    before = name_of(params, tmp_path)
    extra = constraints.Constraint("no_sgd", "a test", constraints.forbid({"train.optimizer": ("sgd",)}))
    monkeypatch.setattr(constraints, "CONSTRAINTS", (*constraints.CONSTRAINTS, extra))
    assert identity.identity(params, tmp_path)["constraints"][-1] == "no_sgd"
    assert name_of(params, tmp_path) != before


@pytest.mark.parametrize(("key", "value"), SAME_STUDY.items())
def test_keys_a_trial_does_not_depend_on_keep_the_study(tmp_path, key, value):
    params = make_params()
    assert name_of(config.with_overrides(params, {key: value}), tmp_path) == name_of(params, tmp_path)


@pytest.mark.parametrize(("key", "value"), NEW_STUDY.items())
def test_the_data_the_search_and_the_trial_base_name_a_new_study(tmp_path, key, value):
    params = make_params()
    assert name_of(config.with_overrides(params, {key: value}), tmp_path) != name_of(params, tmp_path)


def test_study_prefix_is_sweep_study_name(tmp_path):
    name = name_of(make_params(study_name="mine"), tmp_path)
    assert name.startswith("mine-") and name[5:] == name_of(make_params(), tmp_path).split("-")[1]


def test_new_data_starts_a_new_study_and_the_same_inputs_resume(tmp_path, capsys):
    params = make_params(n_trials=2)
    write_data(tmp_path, "path,label,part\na.jpg,porn,train\n")
    sweep_stage.run_sweep(params, 1, tmp_path, fake_factory())
    first = json.loads((tmp_path / "sweep/study.json").read_text())
    assert first == {"study_name": name_of(params, tmp_path), "identity": identity.identity(params, tmp_path)}
    assert len(calls(tmp_path)) == 2

    capsys.readouterr()
    again = sweep_stage.run_sweep(params, 1, tmp_path, fake_factory())  # same inputs: the budget is spent
    assert len(calls(tmp_path)) == 2 and len(again.get_trials()) == 2 and again.study_name == first["study_name"]
    assert capsys.readouterr().out.splitlines() == [
        (f"sweep: study {first['study_name']} already has its 2 trained trials; nothing to run "
        "(raise sweep.n_trials for more: that starts a new study)")]
    assert json.loads((tmp_path / "sweep/study.json").read_text()) == first

    write_data(tmp_path, "path,label,part\nb.jpg,sexy,train\n")  # a new subset: a new study, trained afresh
    fresh = sweep_stage.run_sweep(params, 1, tmp_path, fake_factory())
    second = json.loads((tmp_path / "sweep/study.json").read_text())
    assert second["study_name"] == fresh.study_name != first["study_name"]
    assert second["identity"]["data"]["data/subset.csv"] == hashlib.sha256(b"path,label,part\nb.jpg,sexy,train\n").hexdigest()
    assert len(calls(tmp_path)) == 4 and [t.number for t in by_number(fresh)] == [0, 1]
    names = optuna.get_all_study_names(storage.open_storage(params.sweep, tmp_path))
    assert sorted(names) == sorted([first["study_name"], second["study_name"]])
    assert len(load(params, tmp_path, first["study_name"]).get_trials()) == 2  # the old study is untouched


def test_a_bigger_budget_is_a_new_study(tmp_path, capsys):
    small = make_params(n_trials=2)
    enqueue(small, tmp_path, FEASIBLE, FEASIBLE, FEASIBLE)
    sweep_stage.run_sweep(small, 1, tmp_path, fake_factory())
    assert len(calls(tmp_path)) == 2
    assert [t.state for t in by_number(load(small, tmp_path))] == [TrialState.COMPLETE] * 2 + [TrialState.WAITING]
    bigger = sweep_stage.run_sweep(make_params(n_trials=3), 1, tmp_path, fake_factory())
    assert bigger.study_name != name_of(small, tmp_path)
    assert [t.number for t in by_number(bigger)] == [0, 1, 2] and len(calls(tmp_path)) == 5
    assert all(t.state == TrialState.COMPLETE for t in bigger.get_trials())


def test_same_seed_same_trials_and_workers_draw_different_ones(tmp_path):
    sequences = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        s = sweep_stage.run_sweep(make_params(n_trials=5, startup_trials=2), 1, tmp_path / name, fake_factory())
        sequences.append([t.params for t in by_number(s)])
    assert sequences[0] == sequences[1]
    assert len({json.dumps(p, sort_keys=True) for p in sequences[0]}) == 5


# --- trial 0: table 8.4 ---

def test_trial_0_is_table_8_4_when_nothing_is_pinned(tmp_path, capsys):
    params = make_params(n_trials=2, start_from_paper=True, fixed={}, space="extended")
    s = sweep_stage.run_sweep(params, 1, tmp_path, fake_factory())
    first, second = by_number(s)
    assert first.params == TABLE_8_4_POINT
    assert first.params == {key: value for key, value in paper.selected_configuration().items()
                            if key in paper.TABLE_8_4 or key in ("model.conv_bias", "train.mixup_alpha")}
    trained = calls(tmp_path)[0]  # it trained exactly those values
    for key, value in {**paper.selected_configuration()}.items():
        assert trained_value(trained, key) == value, key
    assert second.params != first.params
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "sweep: trial 0 is table 8.4"

    sweep_stage.run_sweep(params, 1, tmp_path, fake_factory())  # a rerun does not enqueue it again
    assert "trial 0 is table 8.4" not in capsys.readouterr().out
    assert len(load(params, tmp_path).get_trials()) == 2


def test_trial_0_takes_the_pinned_rows_instead(tmp_path, capsys):
    params = make_params(n_trials=1, start_from_paper=True)  # sweep.fixed: image_size 64, batch_size 32
    [first] = sweep_stage.run_sweep(params, 1, tmp_path, fake_factory()).get_trials()
    assert first.params == {k: v for k, v in TABLE_8_4_POINT.items() if k not in ("train.image_size", "train.batch_size")}
    assert first.user_attrs["pinned"] == PINNED_DEFAULT
    [trained] = calls(tmp_path)
    assert (trained["train"]["image_size"], trained["train"]["batch_size"]) == (64, 32)
    assert trained["train"]["scheduler"] == "cosine_restarts" and trained["train"]["optimizer"] == "rmsprop"
    assert capsys.readouterr().out.splitlines()[0] == (
        "sweep: trial 0 is table 8.4 (train.batch_size 48 pinned to 32 by sweep.fixed; "
        "train.image_size 224 pinned to 64 by sweep.fixed)")


def test_the_cpu_default_pins_the_training_recipe_and_searches_the_rest(tmp_path, capsys):
    assert BASE.sweep.fixed == config.CPU_PINNED_ROWS  # params.yaml's default
    params = make_params(n_trials=1, start_from_paper=True, fixed=config.CPU_PINNED_ROWS)
    [first] = sweep_stage.run_sweep(params, 1, tmp_path, fake_factory()).get_trials()
    pinned = {"train.image_size", "train.batch_size", "train.optimizer", "train.scheduler", "train.lr_head",
              "train.lr_backbone"}
    assert first.params == {k: v for k, v in TABLE_8_4_POINT.items() if k not in pinned}
    [trained] = calls(tmp_path)
    assert {key: trained["train"][key] for key in ("optimizer", "scheduler", "lr_head", "lr_backbone")} == {
        "optimizer": "adamw", "scheduler": "onecycle", "lr_head": 3e-3, "lr_backbone": 3e-3}
    assert (trained["model"]["kernel_size"], trained["train"]["weight_decay"]) == (7, 5.04e-6)  # table 8.4's
    assert "train.optimizer rmsprop pinned to adamw by sweep.fixed" in capsys.readouterr().out.splitlines()[0]


def test_trial_0_in_the_paper_space_leaves_the_scheduler_to_the_sampler(tmp_path, capsys):
    params = make_params(n_trials=1, start_from_paper=True, fixed={}, space="paper")
    [first] = sweep_stage.run_sweep(params, 1, tmp_path, fake_factory()).get_trials()
    scheduler = first.params.pop("train.scheduler")
    assert scheduler in ("onecycle", "cosine", "step", "plateau")
    assert first.params == {k: v for k, v in TABLE_8_4_POINT.items() if k != "train.scheduler"}
    assert capsys.readouterr().out.splitlines()[0] == (
        "sweep: trial 0 is table 8.4 (train.scheduler cosine_restarts is outside the paper space's "
        "{onecycle, cosine, step, plateau}: sampled)")


# --- robustness: kill -9, two workers, journal storage ---

def test_killed_sweep_restarts_to_exactly_n_trials(tmp_path):
    params = make_params(n_trials=4)
    name = name_of(params, tmp_path)
    enqueue(params, tmp_path, FEASIBLE, FEASIBLE, FEASIBLE, FEASIBLE)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.dump()))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    worker = subprocess.Popen([sys.executable, str(ROOT / "tests/sweep_fakes.py"), str(tmp_path), str(params_file),
                               "0.5", name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and worker.poll() is None:  # wait until trial 1 is mid-training
        if len(calls(tmp_path)) == 2:
            break
        time.sleep(0.1)
    assert worker.poll() is None, worker.stderr.read().decode()
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    worker.stderr.close()
    before = by_number(load(params, tmp_path, name))
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING] + [TrialState.WAITING] * 2

    sweep_stage.work(params, tmp_path, FakeTrainer(tmp_path), name)
    trials = by_number(load(params, tmp_path, name))
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].user_attrs["fail_reason"] == f"worker {socket.gethostname()}:{worker.pid} died"
    assert len(calls(tmp_path)) == 4


def test_two_workers_share_one_sqlite_study_and_train_exactly_n_trials_around_rejections(tmp_path):
    params = make_params(n_trials=6)
    enqueue(params, tmp_path, FEASIBLE, EVONORM_RELU, FEASIBLE, EVONORM_GELU, *[FEASIBLE] * 5)
    s = sweep_stage.run_sweep(params, 2, tmp_path, fake_factory(seconds_per_epoch=0.2))
    trials = by_number(s)
    assert [t.number for t in trials] == list(range(9))
    assert [t.number for t in trials if "rejected" in t.user_attrs] == [1, 3]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE,
                                         TrialState.PRUNED] + [TrialState.COMPLETE] * 4 + [TrialState.WAITING]
    assert len({t.user_attrs["worker"] for t in trials if t.state == TrialState.COMPLETE}) == 2
    assert len(calls(tmp_path)) == 6
    assert len({json.dumps(t.params, sort_keys=True) for t in trials[:8]}) == 8  # workers draw different trials


def test_journal_file_storage(tmp_path):
    params = make_params(n_trials=2, storage="sweep/journal.log", start_from_paper=True)
    s = sweep_stage.run_sweep(params, 1, tmp_path, fake_factory())
    assert (tmp_path / "sweep/journal.log").is_file() and not (tmp_path / "sweep/study.db").exists()
    assert [t.state for t in by_number(s)] == [TrialState.COMPLETE] * 2
    assert load(params, tmp_path).study_name == json.loads((tmp_path / "sweep/study.json").read_text())["study_name"]
    select.run(params, tmp_path)  # select reads the same journal
    assert yaml.safe_load((tmp_path / "sweep/best.yaml").read_text())["value"] == pytest.approx(
        max(t.value for t in s.get_trials()))


def test_storage_paths_resolve_against_the_root(tmp_path):
    assert storage.local_path("sqlite:///sweep/study.db", tmp_path) == tmp_path / "sweep/study.db"
    assert storage.local_path("sqlite:////abs/study.db", tmp_path) == Path("/abs/study.db")
    assert storage.local_path("sweep/journal.log", tmp_path) == tmp_path / "sweep/journal.log"
    assert storage.local_path("postgresql://user@host/db", tmp_path) is None


# --- outputs ---

def test_outputs(tmp_path):
    params = make_params(n_trials=4, pruner="median", pruner_startup=2)
    enqueue(params, tmp_path, EVONORM_RELU, *({**FEASIBLE, "train.lr_head": lr} for lr in (1e-3, 5e-4, 1e-4)),
            {**FEASIBLE, "train.optimizer": "sgd"})
    sweep_stage.run_sweep(params, 1, tmp_path, fake_factory(nan_optimizer="sgd"))

    trials = pd.read_csv(tmp_path / "sweep/trials.csv")
    assert list(trials.columns) == ["number", "state", "macro_f1", "accuracy", "roc_auc_ovr", "duration_s", "reason",
                                    "worker", *(row.key for row in search_space.PAPER_SPACE)]
    assert list(trials["number"]) == [0, 1, 2, 3, 4]
    assert list(trials["state"]) == ["REJECTED", "COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    rejected = constraints.violation(search_space.full_record({**PINNED_DEFAULT, **by_number(load(params, tmp_path))[0].params},
                                                       paper.selected_configuration()))
    assert rejected.startswith("evonorm_own_activation: model.norm=evonorms0 with model.activation=relu (§5.2 ")
    assert list(trials["reason"].fillna("")) == [rejected, "", "", "median pruner after epoch 1: macro_f1 0.2000",
                                                 "training loss is nan at epoch 1, step 3"]
    assert trials["macro_f1"][1] == pytest.approx(0.8) and trials["macro_f1"][2] == pytest.approx(f1_for(5e-4, 3, 3))
    assert trials["accuracy"][1] == pytest.approx(0.9) and trials["roc_auc_ovr"][1] == pytest.approx(0.9)
    assert trials[["macro_f1", "accuracy", "roc_auc_ovr"]].iloc[[0, 3, 4]].isna().all().all()
    assert (trials["model.norm"][0], trials["model.activation"][0]) == ("evonorms0", "relu")
    assert trials["train.seed"].tolist() == [42] * 5 and trials["train.image_size"].tolist() == [64] * 5
    assert trials["model.gn_groups"].isna().all()  # inactive with evonorms0 and batchnorm
    assert trials["train.lr_head"][1:4].tolist() == [1e-3, 5e-4, 1e-4]
    assert (trials["duration_s"] >= 0).all()
    assert set(trials["worker"]) == {f"{socket.gethostname()}:{os.getpid()}"}

    history = pd.read_csv(tmp_path / "sweep/history.csv")  # the rejected trial never trained: left out
    assert list(history.columns) == ["number", "state", "value", "best_value"]
    assert list(history["number"]) == [1, 2, 3, 4]
    assert list(history["state"]) == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert history["value"][:3].tolist() == pytest.approx([0.8, f1_for(5e-4, 3, 3), 0.2])
    assert history["best_value"].tolist() == pytest.approx([0.8] * 4)

    found = json.loads((tmp_path / "sweep/importances.json").read_text())
    assert (found["evaluator"], found["seed"], found["complete_trials"]) == ("fanova", 42, 2)
    assert found["importances"] and set(found["importances"]) <= set(search_space.SEARCHED_KEYS)
    assert sum(found["importances"].values()) == pytest.approx(1.0)


def test_importances_need_two_complete_trials_with_different_values():
    s = optuna.create_study()
    note = "fANOVA needs at least 2 complete trials with different values"
    assert outputs.importances(s, 0) == {"evaluator": "fanova", "seed": 0, "complete_trials": 0, "importances": {},
                                         "note": note}
    s.optimize(lambda trial: trial.suggest_float("x", 0, 1) * 0 + 0.5, n_trials=3)
    assert outputs.importances(s, 0) == {"evaluator": "fanova", "seed": 0, "complete_trials": 3, "importances": {},
                                         "note": note}
