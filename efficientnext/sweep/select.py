"""The `select` stage: the study's best COMPLETE trial -> sweep/best.yaml, the full record of table 8.4.

Best: the highest `select.metric`; a tie goes to the lower trial number. best.yaml's `params` holds
every row of the search space: the trial's sampled value, the pinned value (the table's fixed seed and
`sweep.fixed`), or, for a conditional row the trial left inactive, params.yaml's value (it has no effect
on that model, and training needs a value). Precedence: with train.config_from = best, training applies
`config.with_overrides(params, best["params"])`, so best.yaml overrides exactly the searched keys and
every key outside the space (epochs, paths, evaluation settings, ...) stays params.yaml's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from efficientnext import config, io
from efficientnext.cli import UserError
from efficientnext.sweep import space, storage
from efficientnext.sweep.objective import PINNED_ATTR
from efficientnext.sweep.study import OUT_DIR

BEST_YAML = "best.yaml"


def _score(trial: FrozenTrial, metric: str) -> float | None:
    value = trial.user_attrs.get(metric)  # absent, or None (e.g. ROC-AUC with a class missing from val)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def best_trial(trials: Iterable[FrozenTrial], metric: str) -> FrozenTrial:
    """The COMPLETE trial with the highest finite `metric`, ties to the lower number."""
    scored = [t for t in trials if t.state == TrialState.COMPLETE and _score(t, metric) is not None]
    if not scored:
        raise UserError(f"the study has no completed trial with a {metric}; run the sweep stage (dvc repro sweep)")
    return max(scored, key=lambda t: (_score(t, metric), -t.number))


def best_record(trial: FrozenTrial, metric: str, params: config.Params) -> dict[str, Any]:
    """best.yaml's content for `trial` (see the module docstring)."""
    overrides = {**trial.user_attrs[PINNED_ATTR], **trial.params}
    return {"trial": trial.number, "metric": metric, "value": float(trial.user_attrs[metric]),
            "params": space.full_record(overrides, params)}


def run(params: config.Params, root: Path | None = None) -> None:
    """DVC stage `select`."""
    root = Path.cwd() if root is None else root
    sweep = params.sweep
    try:
        study = optuna.load_study(study_name=sweep.study_name, storage=storage.open_storage(sweep, root))
    except KeyError:
        raise UserError(f"sweep.storage {sweep.storage} holds no study {sweep.study_name!r}; "
                        "run the sweep stage (dvc repro sweep)") from None
    trial = best_trial(study.get_trials(deepcopy=False), params.select.metric)
    io.write_yaml(root / OUT_DIR / BEST_YAML, best_record(trial, params.select.metric, params))
