"""The `select` stage: the study's best COMPLETE trial -> sweep/best.yaml, the full record of table 8.4.

The study is the one the sweep last worked on (sweep/study.json), and only while its data digests match
the subset and cache on disk: select never picks a trial made on other data. Best: the highest
`select.metric`; a tie goes to the lower trial number. best.yaml's `params` holds every row of the search
space: the trial's sampled value, the pinned value (the table's fixed seed and `sweep.fixed`), or, for a
conditional row the trial left inactive, table 8.4's record (it has no effect on that model). Training
takes from it exactly the keys params.yaml leaves to the sweep (`config.with_choices`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from efficientnext import artifacts, config, paper
from efficientnext.paths import BEST_YAML, PREPARED_INDEX, STUDY_JSON, SUBSET_CSV
from efficientnext.config import UserError
from efficientnext import search_space
from efficientnext.sweep import identity, storage
from efficientnext.sweep.records import PINNED_ATTR

RERUN_HINT = "raise sweep.n_trials or change the space in params.yaml (a new study), then `dvc repro select`"


def _score(trial: FrozenTrial, metric: str) -> float | None:
    value = trial.user_attrs.get(metric)  # absent, or None (e.g. ROC-AUC with a class missing from val)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def best_trial(trials: Iterable[FrozenTrial], metric: str, study_name: str = "the study") -> FrozenTrial:
    """The COMPLETE trial with the highest finite `metric`, ties to the lower number."""
    trials = list(trials)
    scored = [t for t in trials if t.state == TrialState.COMPLETE and _score(t, metric) is not None]
    if not scored:
        counts = ", ".join(f"{sum(t.state == state for t in trials)} {state.name.lower()}"
                           for state in (TrialState.PRUNED, TrialState.FAIL))
        raise UserError(f"{study_name} has no completed trial with a {metric} ({len(trials)} trials: {counts}; "
                        f"reasons in sweep/trials.csv); {RERUN_HINT}")
    return max(scored, key=lambda t: (_score(t, metric), -t.number))


def best_record(trial: FrozenTrial, metric: str) -> dict[str, Any]:
    """best.yaml's content for `trial` (see the module docstring)."""
    overrides = {**trial.user_attrs[PINNED_ATTR], **trial.params}
    return {"trial": trial.number, "metric": metric, "value": float(trial.user_attrs[metric]),
            "params": search_space.full_record(overrides, paper.selected_configuration())}


def swept_study(root: Path) -> str:
    """The name of the study in sweep/study.json, after checking it was made on the data on disk."""
    path = root / STUDY_JSON
    if not path.is_file():
        raise UserError(f"{STUDY_JSON} not found: run the sweep (`dvc repro sweep`)")
    made = json.loads(path.read_text())
    if made["identity"]["data"] != identity.data_digests(root):
        raise UserError(f"study {made['study_name']} was made on other data than {SUBSET_CSV} and "
                        f"{PREPARED_INDEX} now hold: run the sweep on them (`dvc repro sweep`)")
    return made["study_name"]


def run(params: config.Params, root: Path | None = None) -> None:
    """DVC stage `select`."""
    root = Path.cwd() if root is None else root
    name = swept_study(root)
    try:
        study = optuna.load_study(study_name=name, storage=storage.open_storage(params.sweep, root))
    except KeyError:
        raise UserError(f"sweep.storage {params.sweep.storage} holds no study {name!r}; "
                        "run the sweep (`dvc repro sweep`)") from None
    trial = best_trial(study.get_trials(deepcopy=False), params.select.metric, f"study {name}")
    artifacts.write_yaml(root / BEST_YAML, best_record(trial, params.select.metric))
