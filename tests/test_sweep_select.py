"""select: the best completed trial of the study named in sweep/study.json (ties to the lower number, only
on the data it was made on) -> sweep/best.yaml with every row of the space, which training applies to the
keys params.yaml leaves to the sweep."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState
from sweep_fakes import calls, fake_factory

from efficientnext import config, paper
from efficientnext.config import UserError
from efficientnext import search_space
from efficientnext.sweep import identity, select, storage, sweep as sweep_stage
from efficientnext.choices import chosen_params

ROOT = Path(__file__).resolve().parents[1]
PINNED = {"train.seed": 42, "train.image_size": 64, "train.batch_size": 32}
SUBSET = "path,label,part\na.jpg,porn,train\nb.jpg,sexy,val\n"
DISTRIBUTIONS = {"model.attention": CategoricalDistribution(("eca", "se", "cbam", "none")),
                 "model.head_layers": CategoricalDistribution((1, 2)),
                 "model.hidden2": CategoricalDistribution((256, 512)),
                 "train.optimizer": CategoricalDistribution(("adamw", "adam", "sgd", "rmsprop")),
                 "train.lr_head": FloatDistribution(1e-4, 1e-3, log=True)}


def params_for(**overrides) -> config.Params:
    # lr_head searched: only image and batch size pinned, not the CPU default's training recipe
    return config.with_overrides(config.load(ROOT / "params.yaml"),
                                 {"sweep.storage": "sqlite:///sweep/study.db",
                                  "sweep.fixed": {"image_size": 64, "batch_size": 32}, **overrides})


def swept_study(params: config.Params, root: Path) -> optuna.Study:
    """A study as the sweep leaves it: created under its identity's name and recorded in sweep/study.json."""
    record = identity.identity(params, root)
    name = identity.study_name(params, record)
    (root / "sweep").mkdir(parents=True, exist_ok=True)
    (root / "sweep/study.json").write_text(json.dumps({"study_name": name, "identity": record}))
    return sweep_stage.load_study(params.sweep, storage.open_storage(params.sweep, root), name)


def add(s: optuna.Study, state: TrialState, f1: float | None, accuracy: float = 0.5, roc: float | None = 0.7,
        **values) -> None:
    values = {"model.attention": "se", "model.head_layers": 1, "train.lr_head": 3e-4, **values}
    attrs = {"pinned": PINNED} if f1 is None else {"pinned": PINNED, "macro_f1": f1, "accuracy": accuracy,
                                                   "roc_auc_ovr": roc}
    s.add_trial(optuna.create_trial(state=state, value=f1 if state == TrialState.COMPLETE else None, params=values,
                                    distributions={k: DISTRIBUTIONS[k] for k in values}, user_attrs=attrs))


def read_best(root: Path) -> dict:
    return yaml.safe_load((root / "sweep/best.yaml").read_text())


# --- the best trial ---

def test_best_trial_is_the_highest_complete_and_ties_go_to_the_lower_number():
    s = optuna.create_study(direction="maximize")
    add(s, TrialState.COMPLETE, 0.5)
    add(s, TrialState.PRUNED, None)
    add(s, TrialState.COMPLETE, 0.7, **{"model.attention": "eca"})
    add(s, TrialState.COMPLETE, 0.7, **{"model.attention": "cbam", "model.head_layers": 2, "model.hidden2": 256})
    add(s, TrialState.FAIL, None)
    assert select.best_trial(s.get_trials(), "macro_f1").number == 2
    assert select.best_trial(list(reversed(s.get_trials())), "macro_f1").number == 2  # not the order given
    add(s, TrialState.COMPLETE, 0.9, roc=None, **{"model.attention": "none"})
    add(s, TrialState.COMPLETE, 0.8, roc=float("nan"))
    trials = s.get_trials()
    assert select.best_trial(trials, "macro_f1").number == 5
    # an undefined ROC-AUC (None, NaN) never wins; the 0.7 tie goes to trial 0
    assert select.best_trial(trials, "roc_auc_ovr").number == 0


def test_the_selection_metric_decides(tmp_path):
    params = params_for(**{"select.metric": "accuracy"})
    s = swept_study(params, tmp_path)
    add(s, TrialState.COMPLETE, 0.9, accuracy=0.6)
    add(s, TrialState.COMPLETE, 0.7, accuracy=0.8, **{"model.attention": "cbam"})
    select.run(params, tmp_path)
    best = read_best(tmp_path)
    assert (best["trial"], best["metric"], best["value"]) == (1, "accuracy", 0.8)
    assert best["params"]["model.attention"] == "cbam"


# --- best.yaml ---

def test_best_record_holds_every_row_with_table_8_4_for_the_inactive_ones():
    s = optuna.create_study(direction="maximize")
    add(s, TrialState.COMPLETE, 0.8, **{"model.attention": "eca", "train.lr_head": 1e-3, "train.optimizer": "sgd"})
    record = select.best_record(s.get_trials()[0], "macro_f1")
    assert list(record) == ["trial", "metric", "value", "params"]
    assert (record["trial"], record["metric"], record["value"]) == (0, "macro_f1", 0.8)
    assert list(record["params"]) == [row.key for row in search_space.PAPER_SPACE]
    assert record["params"] == {**paper.selected_configuration(), **PINNED, "model.attention": "eca",
                                "model.head_layers": 1, "train.lr_head": 1e-3, "train.optimizer": "sgd"}
    assert record["params"]["model.hidden2"] == 512 and record["params"]["train.focal_gamma"] == 2.0


def test_select_writes_best_yaml_from_table_8_4_not_params_yaml(tmp_path):
    # params.yaml's own values for searched keys are not what best.yaml records for rows a trial left out
    params = params_for(**{"model.hidden2": 256, "train.scheduler": "step", "model.gn_groups": 16})
    s = swept_study(params, tmp_path)
    add(s, TrialState.COMPLETE, 0.4)
    add(s, TrialState.COMPLETE, 0.8, **{"model.attention": "eca", "train.lr_head": 1e-3})
    select.run(params, tmp_path)

    best = read_best(tmp_path)
    assert list(best) == ["trial", "metric", "value", "params"]
    assert (best["trial"], best["metric"], best["value"]) == (1, "macro_f1", 0.8)
    assert best["params"] == {**paper.selected_configuration(), **PINNED, "model.attention": "eca",
                              "model.head_layers": 1, "train.lr_head": 1e-3}
    assert (best["params"]["model.hidden2"], best["params"]["train.scheduler"], best["params"]["model.gn_groups"]) == (
        512, "cosine_restarts", 8)


def test_select_picks_from_the_study_named_in_study_json(tmp_path):
    old = params_for(**{"sweep.n_trials": 3})
    add(swept_study(old, tmp_path), TrialState.COMPLETE, 0.95, **{"model.attention": "none"})
    params = params_for()
    s = swept_study(params, tmp_path)  # the sweep last worked on this one
    assert s.study_name != identity.study_name(old, identity.identity(old, tmp_path))
    add(s, TrialState.COMPLETE, 0.6, **{"model.attention": "cbam"})
    select.run(params, tmp_path)
    best = read_best(tmp_path)
    assert (best["trial"], best["value"], best["params"]["model.attention"]) == (0, 0.6, "cbam")


def test_sweep_then_select_end_to_end_with_a_tie(tmp_path):
    params = params_for(**{"sweep.n_trials": 3, "sweep.epochs": 2, "sweep.pruner": "none",
                           "sweep.start_from_paper": False})
    (tmp_path / "data").mkdir()
    (tmp_path / "data/subset.csv").write_text(SUBSET)
    record = identity.identity(params, tmp_path)
    s = sweep_stage.load_study(params.sweep, storage.open_storage(params.sweep, tmp_path),
                         identity.study_name(params, record))
    for lr in (2e-4, 6e-4, 6e-4):  # trials 1 and 2 tie
        s.enqueue_trial({"model.norm": "batchnorm", "train.lr_head": lr})
    sweep_stage.run_sweep(params, 1, tmp_path, fake_factory())
    select.run(params, tmp_path)
    best = read_best(tmp_path)
    assert (best["trial"], best["params"]["train.lr_head"]) == (1, 6e-4)
    assert best["value"] == max(t.value for t in s.get_trials())
    trained = calls(tmp_path)[1]
    for key, value in best["params"].items():  # best.yaml is exactly what trial 1 trained
        group, leaf = key.split(".")
        assert trained[group][leaf] == value, key


# --- refusals: one line each, naming what to do ---

def test_a_changed_subset_is_refused(tmp_path):
    params = params_for(**{"sweep.n_trials": 1, "sweep.epochs": 1, "sweep.start_from_paper": False})
    (tmp_path / "data").mkdir()
    (tmp_path / "data/subset.csv").write_text(SUBSET)
    name = sweep_stage.run_sweep(params, 1, tmp_path, fake_factory()).study_name
    (tmp_path / "data/subset.csv").write_text(SUBSET + "c.jpg,neutral,val\n")
    with pytest.raises(UserError) as err:
        select.run(params, tmp_path)
    assert str(err.value) == (f"study {name} was made on other data than data/subset.csv and "
                              "data/prepared/index.csv now hold: run the sweep on them (`dvc repro sweep`)")
    assert not (tmp_path / "sweep/best.yaml").exists()
    (tmp_path / "data/subset.csv").write_text(SUBSET)  # the data it was made on: accepted again
    select.run(params, tmp_path)
    assert read_best(tmp_path)["trial"] == 0
    (tmp_path / "data/prepared").mkdir()
    (tmp_path / "data/prepared/index.csv").write_text("path,label,offset,height,width\n")  # a cache it never saw
    with pytest.raises(UserError, match=r"^study .* was made on other data .*`dvc repro sweep`\)$"):
        select.run(params, tmp_path)


def test_no_completed_trial_names_what_to_do(tmp_path):
    params = params_for()
    s = swept_study(params, tmp_path)
    add(s, TrialState.PRUNED, None)
    add(s, TrialState.FAIL, None)
    add(s, TrialState.COMPLETE, 0.5, roc=None)
    with pytest.raises(UserError) as err:
        select.run(params_for(**{"select.metric": "roc_auc_ovr"}), tmp_path)
    message = str(err.value)
    assert message == (f"study {s.study_name} has no completed trial with a roc_auc_ovr (3 trials: 1 pruned, 1 fail; "
                       f"reasons in sweep/trials.csv); {select.RERUN_HINT}")
    assert "\n" not in message
    assert select.RERUN_HINT == ("raise sweep.n_trials or change the space in params.yaml (a new study), "
                                 "then `dvc repro select`")


def test_a_sweep_whose_every_trial_failed_names_what_to_do(tmp_path):
    params = params_for(**{"sweep.n_trials": 2, "sweep.epochs": 1, "sweep.start_from_paper": False,
                           "sweep.fixed": {"optimizer": "sgd", "norm": "batchnorm"}})
    name = sweep_stage.run_sweep(params, 1, tmp_path, fake_factory(nan_optimizer="sgd")).study_name
    with pytest.raises(UserError) as err:
        select.run(params, tmp_path)
    assert str(err.value) == (f"study {name} has no completed trial with a macro_f1 (2 trials: 0 pruned, 2 fail; "
                              f"reasons in sweep/trials.csv); {select.RERUN_HINT}")


def test_missing_study_json_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError) as err:
        select.run(params_for(), tmp_path)
    assert str(err.value) == "sweep/study.json not found: run the sweep (`dvc repro sweep`)"


def test_a_study_the_storage_lacks_is_a_one_line_error(tmp_path):
    params = params_for()
    record = identity.identity(params, tmp_path)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep/study.json").write_text(json.dumps({"study_name": "efficientnext-0123456789ab",
                                                            "identity": record}))
    with pytest.raises(UserError) as err:
        select.run(params, tmp_path)
    assert str(err.value) == ("sweep.storage sqlite:///sweep/study.db holds no study 'efficientnext-0123456789ab'; "
                              "run the sweep (`dvc repro sweep`)")


# --- training takes best.yaml for the keys params.yaml leaves to the sweep ---

def _best_yaml(tmp_path: Path, **values) -> Path:
    params = params_for()
    s = swept_study(params, tmp_path)
    add(s, TrialState.COMPLETE, 0.9, **values)
    select.run(params, tmp_path)
    return tmp_path / "sweep/best.yaml"


def test_with_choices_fills_exactly_the_keys_left_to_the_sweep(tmp_path):
    best = yaml.safe_load(_best_yaml(tmp_path, **{"model.attention": "cbam", "model.head_layers": 2,
                                                   "model.hidden2": 256}).read_text())
    params = params_for()
    trained = config.with_choices(params, best["params"], source="sweep/best.yaml")
    assert trained.from_sweep == frozenset()
    for key in search_space.SEARCHED_KEYS:
        assert trained.value(key) == best["params"][key], key
    assert (trained.model.attention, trained.model.head_layers, trained.model.hidden2) == ("cbam", 2, 256)
    assert trained.train.image_size == 64 and trained.train.batch_size == 32 and trained.train.seed == 42
    # keys outside the space stay params.yaml's
    assert trained.train.epochs == params.train.epochs and trained.evaluate == params.evaluate
    assert trained.model.stages == params.model.stages and trained.sweep == params.sweep
    with pytest.raises(config.ParamsError) as err:
        config.with_choices(params, {k: v for k, v in best["params"].items() if k != "model.width"}, "sweep/best.yaml")
    assert str(err.value) == "sweep/best.yaml: no value for model.width"


def test_chosen_params_takes_best_yaml(tmp_path, capsys):
    best_yaml = _best_yaml(tmp_path, **{"model.attention": "cbam", "train.lr_head": 5e-4})
    capsys.readouterr()
    chosen, sources = chosen_params(params_for(), best_yaml)
    assert (chosen.model.attention, chosen.train.lr_head, chosen.train.image_size) == ("cbam", 5e-4, 64)
    assert chosen.model.kernel_size == 7 and chosen.train.optimizer == "rmsprop"  # table 8.4's, via best.yaml
    assert sources == {key: "sweep" for key in search_space.SEARCHED_KEYS}
    assert capsys.readouterr().out.splitlines() == [(f"train: {len(search_space.SEARCHED_KEYS)} searched keys from "
                                                    f"{best_yaml} (trial 0)")]


def test_a_key_params_yaml_sets_wins_over_best_yaml_and_is_named(tmp_path, capsys):
    best_yaml = _best_yaml(tmp_path, **{"model.attention": "cbam"})
    capsys.readouterr()
    params = config.with_overrides(params_for(), {"model.attention": "se", "model.kernel_size": 7})
    chosen, sources = chosen_params(params, best_yaml)
    assert chosen.model.attention == "se" and chosen.model.kernel_size == 7
    assert chosen.model.hidden1 == 512 and chosen.train.image_size == 64  # the rest from best.yaml
    assert sources == {key: "params" if key in ("model.attention", "model.kernel_size") else "sweep"
                       for key in search_space.SEARCHED_KEYS}
    # one line; kernel_size equals best.yaml's 7, so only attention overrides the sweep's choice
    assert capsys.readouterr().out.splitlines() == [
        (f"train: {len(search_space.SEARCHED_KEYS) - 2} searched keys from {best_yaml} (trial 0); "
        "params.yaml overrides model.attention=se (sweep: cbam)")]


def test_training_without_best_yaml_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError) as err:
        chosen_params(params_for(), tmp_path / "sweep/best.yaml")
    assert str(err.value) == (f"{tmp_path / 'sweep/best.yaml'} not found, and params.yaml leaves "
                              f"{len(search_space.SEARCHED_KEYS)} keys to the sweep: run it (`dvc repro select`), "
                              "or set train.choices_from: paper to train table 8.4")
