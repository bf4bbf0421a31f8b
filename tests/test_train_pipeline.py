"""End to end: `dvc repro evaluate` on the tiny profile in a temporary git copy of the repository."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import dvc
from efficientnext.train import checkpoint

METRIC_KEYS = {"accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc_ovr", "nll", "brier", "ece",
               "per_class", "confusion_matrix", "confusion_matrix_normalized"}


@pytest.mark.slow
def test_dvc_repro_evaluate_on_tiny_profile(tiny_repo: Path):
    dvc(tiny_repo, "repro", "evaluate")
    classes = yaml.safe_load((tiny_repo / "params.yaml").read_text())["data"]["classes"]

    test = json.loads((tiny_repo / "metrics/test.json").read_text())
    assert set(test) == METRIC_KEYS | {"validation"} and set(test["validation"]) == METRIC_KEYS
    assert list(test["per_class"]) == classes
    assert set(test["per_class"][classes[0]]) == {"precision", "recall", "f1", "support"}
    support = sum(c["support"] for c in test["per_class"].values())
    assert sum(map(sum, test["confusion_matrix"])) == support

    predictions = pd.read_csv(tiny_repo / "predictions/test.csv")
    assert list(predictions.columns) == ["path", "label", "predicted", *classes] and len(predictions) == support
    assert list(pd.read_csv(tiny_repo / "plots/confusion.csv").columns) == ["actual", "predicted"]
    assert (tiny_repo / "plots/reliability.csv").is_file() and list((tiny_repo / "plots/roc").glob("*.csv"))

    train = json.loads((tiny_repo / "metrics/train.json").read_text())
    assert train["best_epoch"] >= 1 and 0 <= train["val"]["macro_f1"] <= 1
    best = checkpoint.load(tiny_repo / "models/best.pt")
    assert best["classes"] == classes and best["epoch"] == train["best_epoch"]

    # DVC sees the curves and metrics: `dvc metrics show` and `dvc plots show` read what the stages declared.
    shown = json.loads(dvc(tiny_repo, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    assert {"metrics/train.json", "metrics/test.json", "dvclive/metrics.json"} <= set(files)
    plots = json.loads(dvc(tiny_repo, "plots", "show", "--json", "--split").stdout)["data"]
    assert {"dvclive/plots/metrics/val/macro_f1.tsv", "plots/confusion.csv", "plots/reliability.csv"} <= set(plots)
    assert any(name.startswith("plots/roc/") for name in plots)
    assert dvc(tiny_repo, "status").stdout.strip().endswith("up to date.")
