"""select: the best completed trial (ties to the lower number) -> sweep/best.yaml with every table-8.4 key,
which training applies over params.yaml."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from efficientnext import config
from efficientnext.cli import UserError
from efficientnext.sweep import select, space, storage, study

ROOT = Path(__file__).resolve().parents[1]
PINNED = {"train.seed": 42, "train.image_size": 64, "train.batch_size": 32}


def params_for(tmp_path: Path) -> config.Params:
    return config.with_overrides(config.load(ROOT / "params.yaml"), {"sweep.storage": "sqlite:///sweep/study.db"})


def add(s: optuna.Study, state: TrialState, f1: float | None, **values) -> None:
    values = {"model.attention": "se", "model.head_layers": 1, "train.lr_head": 3e-3, **values}
    dists = {"model.attention": CategoricalDistribution(("se", "eca", "cbam", "none")),
             "model.head_layers": CategoricalDistribution((1, 2)),
             "model.hidden2": CategoricalDistribution((128, 256, 512)),
             "train.lr_head": FloatDistribution(1e-4, 1e-2, log=True)}
    attrs = {"pinned": PINNED} if f1 is None else {"pinned": PINNED, "macro_f1": f1, "accuracy": 0.5,
                                                   "roc_auc_ovr": 0.7}
    s.add_trial(optuna.create_trial(state=state, value=f1 if state == TrialState.COMPLETE else None, params=values,
                                    distributions={k: dists[k] for k in values}, user_attrs=attrs))


def make_study(params: config.Params, root: Path) -> optuna.Study:
    return study.load_study(params.sweep, storage.open_storage(params.sweep, root))


def test_best_trial_is_the_highest_complete_and_ties_go_to_the_lower_number(tmp_path):
    params = params_for(tmp_path)
    s = make_study(params, tmp_path)
    add(s, TrialState.COMPLETE, 0.5)
    add(s, TrialState.PRUNED, None)
    add(s, TrialState.COMPLETE, 0.7, **{"model.attention": "eca"})
    add(s, TrialState.COMPLETE, 0.7, **{"model.attention": "cbam", "model.head_layers": 2, "model.hidden2": 256})
    add(s, TrialState.FAIL, None)
    assert select.best_trial(s.get_trials(), "macro_f1").number == 2
    add(s, TrialState.COMPLETE, 0.9, **{"model.attention": "none"})
    trials = s.get_trials()
    trials[-1].user_attrs["roc_auc_ovr"] = None  # undefined ROC-AUC never wins; the 0.7 tie goes to trial 0
    assert select.best_trial(trials, "roc_auc_ovr").number == 0


def test_select_writes_every_table_key(tmp_path):
    params = params_for(tmp_path)
    s = make_study(params, tmp_path)
    add(s, TrialState.COMPLETE, 0.4)
    add(s, TrialState.COMPLETE, 0.8, **{"model.attention": "eca", "train.lr_head": 1e-3})
    select.run(params, tmp_path)

    best = yaml.safe_load((tmp_path / "sweep/best.yaml").read_text())
    assert list(best) == ["trial", "metric", "value", "params"]
    assert (best["trial"], best["metric"], best["value"]) == (1, "macro_f1", 0.8)
    assert list(best["params"]) == [row.key for row in space.SPACE]
    assert best["params"]["model.attention"] == "eca" and best["params"]["train.lr_head"] == 1e-3
    assert {key: best["params"][key] for key in PINNED} == PINNED
    # rows the trial did not search (inactive or not sampled here) keep params.yaml's values
    assert best["params"]["model.hidden2"] == params.model.hidden2
    assert best["params"]["train.optimizer"] == params.train.optimizer


def test_training_applies_best_yaml_over_params(tmp_path):
    params = params_for(tmp_path)
    s = make_study(params, tmp_path)
    add(s, TrialState.COMPLETE, 0.9, **{"model.attention": "cbam", "model.head_layers": 2, "model.hidden2": 128})
    select.run(params, tmp_path)
    best = yaml.safe_load((tmp_path / "sweep/best.yaml").read_text())
    trained = config.with_overrides(params, best["params"], source="sweep/best.yaml")
    assert (trained.model.attention, trained.model.head_layers, trained.model.hidden2) == ("cbam", 2, 128)
    assert trained.train.image_size == 64 and trained.train.seed == 42
    # keys outside the space stay params.yaml's
    assert trained.train.epochs == params.train.epochs and trained.evaluate == params.evaluate
    assert trained.model.stages == params.model.stages


def test_train_stage_reads_best_yaml(tmp_path, monkeypatch):
    from efficientnext.train import run as train_run

    params = params_for(tmp_path)
    s = make_study(params, tmp_path)
    add(s, TrialState.COMPLETE, 0.9, **{"model.attention": "cbam"})
    select.run(params, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert train_run.BEST_CONFIG == select.OUT_DIR / select.BEST_YAML
    assert train_run.chosen_params(params).model.attention == "cbam"


def test_no_completed_trial_is_a_one_line_error(tmp_path):
    params = params_for(tmp_path)
    s = make_study(params, tmp_path)
    add(s, TrialState.PRUNED, None)
    with pytest.raises(UserError) as err:
        select.run(params, tmp_path)
    assert str(err.value) == "the study has no completed trial with a macro_f1; run the sweep stage (dvc repro sweep)"


def test_missing_study_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError) as err:
        select.run(params_for(tmp_path), tmp_path)
    assert str(err.value) == ("sweep.storage sqlite:///sweep/study.db holds no study 'efficientnext'; "
                              "run the sweep stage (dvc repro sweep)")
