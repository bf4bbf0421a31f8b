"""The sweep's report inputs, written atomically into sweep/: trials.csv, history.csv, importances.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from efficientnext import artifacts
from efficientnext import search_space
from efficientnext.sweep.records import (FAIL_REASON_ATTR, METRICS, PINNED_ATTR, PRUNE_REASON_ATTR,
                                         REJECTED_ATTR, WORKER_ATTR)

TRIALS_CSV, HISTORY_CSV, IMPORTANCES_JSON = "trials.csv", "history.csv", "importances.json"


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, metrics, duration, reason, worker, then every row key of the space
    (the searched or pinned value; empty for an inactive conditional row or an untrained trial's unsampled rows)."""
    records = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        attrs = trial.user_attrs
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        values = {**attrs.get(PINNED_ATTR, {}), **trial.params}
        records.append({
            "number": trial.number, "state": "REJECTED" if REJECTED_ATTR in attrs else trial.state.name,
            **{metric: attrs.get(metric) for metric in METRICS},
            "duration_s": duration,
            "reason": attrs.get(REJECTED_ATTR) or attrs.get(PRUNE_REASON_ATTR) or attrs.get(FAIL_REASON_ATTR),
            "worker": attrs.get(WORKER_ATTR),
            **{row.key: values.get(row.key) for row in search_space.PAPER_SPACE},
        })
    columns = ["number", "state", *METRICS, "duration_s", "reason", "worker", *(row.key for row in search_space.PAPER_SPACE)]
    return pd.DataFrame.from_records(records, columns=columns)


def history_frame(study: optuna.Study) -> pd.DataFrame:
    """Optimisation history: each finished trial's objective value and the best value so far."""
    rows, best = [], None
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if not trial.state.is_finished() or REJECTED_ATTR in trial.user_attrs:  # rejected: never trained
            continue
        if trial.state == TrialState.COMPLETE:
            best = trial.value if best is None else max(best, trial.value)
        rows.append({"number": trial.number, "state": trial.state.name, "value": trial.value, "best_value": best})
    return pd.DataFrame.from_records(rows, columns=["number", "state", "value", "best_value"])


def importances(study: optuna.Study, seed: int) -> dict[str, Any]:
    """fANOVA importances of the parameters every complete trial shares; empty until two complete trials differ."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    result: dict[str, Any] = {"evaluator": "fanova", "seed": seed, "complete_trials": len(complete)}
    if len({trial.value for trial in complete}) < 2:  # fANOVA explains variance: it needs two different values
        return {**result, "importances": {}, "note": "fANOVA needs at least 2 complete trials with different values"}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return {**result, "importances": {key: float(value) for key, value in found.items()}}


def write(study: optuna.Study, out_dir: Path, seed: int) -> None:
    artifacts.write_csv(out_dir / TRIALS_CSV, trials_frame(study))
    artifacts.write_csv(out_dir / HISTORY_CSV, history_frame(study))
    artifacts.write_json(out_dir / IMPORTANCES_JSON, importances(study, seed))
