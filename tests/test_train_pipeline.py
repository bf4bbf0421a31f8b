"""End to end: `dvc repro` (evaluate, then the report) on the tiny profile in a temporary git copy of the
repository."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import dvc
from efficientnext import params_trace
from test_dvc_deps import params_mismatches
from efficientnext.train import checkpoint

METRIC_KEYS = {"accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc_ovr", "nll", "brier", "ece",
               "per_class", "confusion_matrix", "confusion_matrix_normalized"}


@pytest.mark.slow
def test_dvc_repro_on_tiny_profile(tiny_repo: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv(params_trace.ENV, str(tmp_path / "params-read"))
    dvc(tiny_repo, "repro")
    # dvc.yaml lists exactly the params keys each stage's run read (tests/test_dvc_deps.py)
    assert params_mismatches(tmp_path / "params-read") == {}
    classes = yaml.safe_load((tiny_repo / "params.yaml").read_text())["data"]["classes"]

    test = json.loads((tiny_repo / "metrics/test.json").read_text())
    assert set(test) == METRIC_KEYS | {"validation", "operating_points"} and set(test["validation"]) == METRIC_KEYS
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
    # the report closes the DAG (its contents: tests/test_report.py)
    assert (tiny_repo / "reports/results.html").is_file() and (tiny_repo / "reports/results.md").is_file()
    assert dvc(tiny_repo, "status").stdout.strip().endswith("up to date.")


def logged_params(shown) -> list[dict]:
    """Every dvclive/params.yaml block in `dvc exp show --json` (baselines and experiments alike)."""
    if isinstance(shown, list):
        return [found for item in shown for found in logged_params(item)]
    if not isinstance(shown, dict):
        return []
    here = shown.get("dvclive/params.yaml")
    found = [here.get("data", here)] if isinstance(here, dict) else []
    return found + [item for key, value in shown.items() if key != "dvclive/params.yaml"
                    for item in logged_params(value)]


@pytest.mark.slow
def test_exp_run_override_trains_what_exp_show_shows(tiny_repo: Path):
    from efficientnext.config import ModelParams
    from efficientnext.models import create_model
    from timm.layers import SqueezeExcite

    dvc(tiny_repo, "exp", "run", "-S", "model.attention=se")
    best = checkpoint.load(tiny_repo / "models/best.pt")
    assert best["model_config"]["attention"] == "se"
    model = create_model(ModelParams(**best["model_config"]), len(best["classes"]))
    assert any(isinstance(module, SqueezeExcite) for module in model.modules())
    loaded = model.load_state_dict(best["state_dict"])  # strict: raises unless the weights are an SE model's
    assert (loaded.missing_keys, loaded.unexpected_keys) == ([], [])
    trained = yaml.safe_load((tiny_repo / "dvclive/params.yaml").read_text())
    assert trained["model.attention"] == "se" and trained["source"]["model.attention"] == "params"
    assert trained["source"]["model.kernel_size"] == "sweep"
    shown = json.loads(dvc(tiny_repo, "exp", "show", "--json").stdout)
    assert "se" in [block.get("model.attention") for block in logged_params(shown)]


@pytest.mark.slow
def test_a_bad_value_under_make_repro_leaves_every_output_in_place(tiny_repo: Path):
    from conftest import VENV_BIN, run

    dvc(tiny_repo, "repro", "evaluate")
    outputs = ["models/best.pt", "models/last.pt", "dvclive/metrics.json", "data/raw", "metrics/test.json"]
    before = {path: (tiny_repo / path).stat().st_mtime_ns for path in outputs}
    raw = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    raw["train"]["epochs"] = -3
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    result = run(["make", "repro", f"VENV={VENV_BIN.parent}"], tiny_repo, check=False)
    assert result.returncode != 0
    assert "params.yaml: train.epochs = -3 is out of range, allowed >= 1" in result.stderr
    # a bare `dvc repro` stops at the check stage, before DVC empties any other stage's outputs
    bare = dvc(tiny_repo, "repro", check=False)
    assert bare.returncode != 0 and "train.epochs = -3" in bare.stderr + bare.stdout
    assert {path: (tiny_repo / path).stat().st_mtime_ns for path in outputs} == before
