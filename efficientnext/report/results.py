"""The results report's loading and tables: the paper's tables 8.1–8.4 and the sweep and data tables,
each a DataFrame of printed strings (efficientnext.report.text), from the artifacts the pipeline cached.

Every number is read from its file, never recomputed: 8.1 and 8.3 are metrics/test.json, 8.2 the DVCLive
curves at the best epoch of metrics/train.json, 8.4 dvclive/params.yaml (what trained, and where each
value came from) beside sweep/best.yaml (what the sweep chose).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from efficientnext import search_space
from efficientnext.report.text import metric, value

SUMMARY_METRICS = {"accuracy": "Accuracy", "macro_precision": "Macro precision", "macro_recall": "Macro recall",
                   "macro_f1": "Macro F1", "roc_auc_ovr": "ROC-AUC (OvR)", "ece": "ECE"}
PER_CLASS = {"precision": "Precision", "recall": "Recall", "f1": "F1"}
# Rows of the top-trials table besides the scores: the choices that most change a model.
TRIAL_KEYS = ("model.kernel_size", "model.attention", "model.norm", "model.activation", "train.optimizer",
              "train.lr_head", "train.loss")


@dataclass(frozen=True)
class Results:
    test: dict[str, Any]            # metrics/test.json (with its `validation` block)
    train: dict[str, Any]           # metrics/train.json
    curves: pd.DataFrame            # one row per epoch: step, train/loss, val/macro_f1, ...
    trained: dict[str, Any]         # dvclive/params.yaml: each searched key's trained value and its source
    best: dict[str, Any]            # sweep/best.yaml
    trials: pd.DataFrame            # sweep/trials.csv
    history: pd.DataFrame           # sweep/history.csv
    importances: dict[str, Any]     # sweep/importances.json
    validate: dict[str, Any]        # metrics/validate.json
    split: dict[str, Any]           # metrics/split.json
    subset: dict[str, Any]          # metrics/subset.json
    roc: dict[str, pd.DataFrame]    # plots/roc/<class>.csv
    reliability: pd.DataFrame       # plots/reliability.csv

    @property
    def classes(self) -> list[str]:
        return list(self.test["per_class"])


def read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def read_curves(live_curves: str | Path) -> pd.DataFrame:
    """DVCLive's per-epoch metrics (<group>/<name>.tsv) as one frame keyed by step."""
    frames = [pd.read_csv(tsv, sep="\t").rename(columns=lambda c, t=tsv: c if c == "step" else
                                                f"{t.parent.name}/{t.stem}")
              for tsv in sorted(Path(live_curves).glob("*/*.tsv"))]
    curves = frames[0]
    for frame in frames[1:]:
        curves = curves.merge(frame[["step", frame.columns[-1]]], on="step", how="outer")
    return curves.sort_values("step", ignore_index=True)


def load(*, test_metrics: str, reliability_curve: str, roc_curves: str, train_metrics: str, live_params: str,
         live_curves: str, best_yaml: str, sweep_trials: str, sweep_history: str, sweep_importances: str,
         validate_metrics: str, split_metrics: str, subset_metrics: str) -> Results:
    """The results report's artifacts (the notebook's parameters, less the checkpoint: see architecture)."""
    return Results(
        test=read_json(test_metrics), train=read_json(train_metrics), curves=read_curves(live_curves),
        trained=yaml.safe_load(Path(live_params).read_text()),
        best=yaml.safe_load(Path(best_yaml).read_text()),
        trials=pd.read_csv(sweep_trials), history=pd.read_csv(sweep_history),
        importances=read_json(sweep_importances), validate=read_json(validate_metrics),
        split=read_json(split_metrics), subset=read_json(subset_metrics),
        roc={path.stem: pd.read_csv(path) for path in sorted(Path(roc_curves).glob("*.csv"))},
        reliability=pd.read_csv(reliability_curve))


# ------------------------------------------------------------------------------------------ §8 tables

def table_8_1(results: Results) -> pd.DataFrame:
    """Validation and test summary metrics of the best checkpoint."""
    rows = [{"Split": split, **{label: metric(scores.get(key)) for key, label in SUMMARY_METRICS.items()}}
            for split, scores in (("Validation", results.test["validation"]), ("Test", results.test))]
    return pd.DataFrame(rows)


def best_epoch_row(results: Results) -> pd.Series:
    """The DVCLive curves' row of the best epoch (the checkpoint models/best.pt holds)."""
    return results.curves.set_index("step").loc[results.train["best_epoch"]]


def table_8_2(results: Results) -> pd.DataFrame:
    """Train and validation loss, accuracy and macro-F1 at the best epoch (train macro-F1 is not logged)."""
    at_best = best_epoch_row(results)
    val = results.train["val"]
    rows = (("Loss", at_best.get("train/loss"), val["loss"]),
            ("Accuracy", at_best.get("train/accuracy"), val["accuracy"]),
            ("Macro F1", None, val["macro_f1"]))
    return pd.DataFrame([{"Metric": name, "Train (best epoch)": metric(train), "Val (best epoch)": metric(validation)}
                         for name, train, validation in rows])


def table_8_3(results: Results) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support on the test split."""
    return pd.DataFrame([{"Class": name, **{label: metric(scores[key]) for key, label in PER_CLASS.items()},
                          "Support": str(scores["support"])} for name, scores in results.test["per_class"].items()])


def table_8_4(results: Results) -> pd.DataFrame:
    """Every searched row: the trained value, where it came from (sweep, paper or params), the sweep's choice."""
    labels = {row.key: row.label for row in search_space.PAPER_SPACE}
    chosen = results.best["params"]
    return pd.DataFrame([{"Row": labels[key], "Key": key, "Trained value": value(results.trained[key]),
                          "From": source, f"Sweep's choice (trial {results.best['trial']})": value(chosen[key])}
                         for key, source in results.trained["source"].items()])


# ------------------------------------------------------------------------------------------ the sweep

def trial_states(results: Results) -> pd.DataFrame:
    """How many trials ended in each state, and why (pruned, rejected and failed trials carry a reason)."""
    trials = results.trials.assign(reason=results.trials["reason"].fillna("—"))
    counts = trials.groupby(["state", "reason"], sort=True).size().reset_index(name="trials")
    return counts.rename(columns={"state": "State", "reason": "Reason", "trials": "Trials"}).astype(str)


def top_trials(results: Results, count: int = 5) -> pd.DataFrame:
    """The best completed trials by macro-F1 (ties: the lower number, as select decides)."""
    complete = results.trials[results.trials["state"] == "COMPLETE"]
    top = complete.sort_values(["macro_f1", "number"], ascending=[False, True]).head(count)
    return pd.DataFrame([{"Trial": str(row["number"]), "Macro F1": metric(row["macro_f1"]),
                          "Accuracy": metric(row["accuracy"]), "Seconds": f"{row['duration_s']:.0f}",
                          **{key: value(None if pd.isna(row[key]) else row[key]) for key in TRIAL_KEYS}}
                         for _, row in top.iterrows()])


def importances_note(results: Results) -> str:
    """One line on how the importances were computed, or why there are none."""
    found = results.importances
    if not found["importances"]:
        return f"No importances: {found.get('note', 'none computed')}."
    return (f"fANOVA importances (optuna.importance, seed {found['seed']}) over "
            f"{found['complete_trials']} complete trials; they sum to 1.")


# ------------------------------------------------------------------------------------------- the data

def validation_outcomes(results: Results) -> pd.DataFrame:
    """Files per validation outcome: quarantined ones by reason, fixed ones by fix, the rest ok."""
    summary = results.validate
    rows = [("ok", "—", summary["per_status"]["ok"])]
    rows += [("quarantined", reason, n) for reason, n in summary["per_reason"].items() if n]
    rows += [("fixed", fix, n) for fix, n in summary["fixes"].items()]
    return pd.DataFrame([{"Status": s, "Reason": r, "Files": str(n)} for s, r, n in rows])


def split_counts(results: Results) -> pd.DataFrame:
    """Images per class in each split (long form: split, class, images)."""
    return pd.DataFrame([{"split": split, "class": name, "images": n}
                         for split, counts in results.split["counts"].items() for name, n in counts.items()])


def split_table(results: Results) -> pd.DataFrame:
    wide = split_counts(results).pivot(index="class", columns="split", values="images")
    wide = wide.loc[results.classes, list(results.split["counts"])]
    wide.loc["total"] = wide.sum()
    return wide.reset_index().rename(columns={"class": "Class"}).astype(str)


def subset_table(results: Results) -> pd.DataFrame:
    """The sweep subset per class: images taken for its train and val parts, the target and the shortfall."""
    return pd.DataFrame([{"Class": name, "Train": str(row["train"]), "Val": str(row["val"]),
                          "Target": str(row["target"]), "Shortfall": str(row["shortfall"])}
                         for name, row in results.subset["per_class"].items()])
