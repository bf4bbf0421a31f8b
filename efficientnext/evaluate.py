"""Evaluation (§7): the metrics of metrics/test.json, computed with scikit-learn, and the evaluate stage.

The stage loads a run directory's models/best.pt (`RunPaths`: the repository root for DVC, `--out
results/x` elsewhere), predicts the validation and test splits, and writes into the same run directory
metrics/test.json (test metrics plus a `validation` block with the same keys, and the moderation
`operating_points` of efficientnext/operating_points.py), predictions/test.csv
(path, label, predicted, one probability column per class) and the DVC plot data:
plots/confusion.csv (actual, predicted), plots/roc/<class>.csv (fpr, tpr; one-vs-rest) and
plots/reliability.csv (the calibration curve behind the ECE), all for the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (brier_score_loss, confusion_matrix, log_loss, precision_recall_fscore_support,
                             roc_curve)

from efficientnext import artifacts
from efficientnext.config import UserError
from efficientnext.config import ModelParams, Params
from efficientnext.data.datasets import PreparedImages, read_rows
from efficientnext.data.transforms import build_transforms
from efficientnext.models import create_model
from efficientnext.operating_points import BLOCK, operating_points
from efficientnext.train.checkpoint import FormatError, ModelRecord, load_record
from efficientnext.paths import PREPARED, RunPaths, split_csv
from efficientnext.train.engine import predict
from efficientnext.train.metrics import roc_auc_ovr, softmax, summary_scores
from efficientnext.train.runtime import Runtime, make_loader


def reliability_curve(probs: np.ndarray, y_true: np.ndarray, bins: int) -> pd.DataFrame:
    """Equal-width confidence bins over [0, 1]: mean confidence, accuracy and count of each non-empty bin."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)  # (lo, hi] bins, 0 in the first
    rows = [{"bin": b, "lower": b / bins, "upper": (b + 1) / bins, "confidence": confidence[index == b].mean(),
             "accuracy": correct[index == b].mean(), "count": int((index == b).sum())}
            for b in range(bins) if (index == b).any()]
    return pd.DataFrame(rows, columns=["bin", "lower", "upper", "confidence", "accuracy", "count"])


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int) -> float:
    """ECE = Σ_b (n_b / N) |accuracy_b − confidence_b| over equal-width confidence bins."""
    curve = reliability_curve(probs, y_true, bins)
    if curve.empty:
        return 0.0
    return float((curve["count"] * (curve["accuracy"] - curve["confidence"]).abs()).sum() / curve["count"].sum())


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str], ece_bins: int) -> dict[str, Any]:
    """The keys of metrics/test.json for one split: summary scores, calibration, per-class, confusion."""
    labels = list(range(len(classes)))
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    counts = confusion_matrix(y_true, y_pred, labels=labels)
    rows = counts.sum(axis=1, keepdims=True)
    return {
        **summary_scores(y_true, y_pred, len(classes)),
        "roc_auc_ovr": roc_auc_ovr(y_true, probs, len(classes)),
        "nll": float(log_loss(y_true, probs, labels=labels)),
        # Multi-class Brier: mean over samples of Σ_c (p_c − y_c)², range [0, 2].
        "brier": float(brier_score_loss(y_true, probs, labels=labels, scale_by_half=False)),
        "ece": expected_calibration_error(probs, y_true, ece_bins),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(classes)},
        "confusion_matrix": counts.tolist(),
        "confusion_matrix_normalized": np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0).tolist(),
    }


def roc_curves(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, pd.DataFrame]:
    """One-vs-rest ROC points per class present with both outcomes."""
    curves = {}
    for index, name in enumerate(classes):
        positives = y_true == index
        if positives.any() and not positives.all():
            fpr, tpr, _ = roc_curve(positives, probs[:, index])
            curves[name] = pd.DataFrame({"fpr": fpr, "tpr": tpr})
    return curves


def predictions_table(rows: pd.DataFrame, probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    table = pd.DataFrame({"path": rows["path"].to_numpy(), "label": rows["label"].to_numpy(),
                          "predicted": np.asarray(classes)[probs.argmax(axis=1)]})
    return pd.concat([table, pd.DataFrame(probs, columns=classes)], axis=1)


def load_model(path: Path, device: Any) -> tuple[Any, ModelRecord]:
    """The best checkpoint's model (eval mode, on `device`) and its record."""
    if not path.is_file():
        raise UserError(f"{path} not found: run the train stage first (`dvc repro train`)")
    try:
        record = load_record(path)
    except FormatError as exc:
        raise UserError(f"{path}: {exc}; retrain (`dvc repro train`)") from exc
    model = create_model(ModelParams(**record.model_config), len(record.classes))
    model.load_state_dict(record.state_dict)
    return model.to(device).eval(), record


def eval_images(params: Params, record: ModelRecord, rows: pd.DataFrame) -> PreparedImages:
    """`rows` of a split from the prepared cache as the checkpoint's model sees them: its size and normalisation."""
    augment = params.augment.model_copy(update={"mean": record.mean, "std": record.std})
    return PreparedImages(PREPARED, rows, record.classes, build_transforms(augment, record.image_size, train=False))


def _predict_split(params: Params, runtime: Runtime, model: Any, record: ModelRecord,
                   split: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows, labels and class probabilities of one split."""
    rows = read_rows(split_csv(split))
    dataset = eval_images(params, record, rows)
    loader = make_loader(dataset, params.evaluate.batch_size, shuffle=False, workers=params.train.workers,
                         runtime=runtime)
    logits, labels = predict(model, loader, runtime, len(record.classes))
    return rows, labels, softmax(logits)


def run(params: Params, out: RunPaths = RunPaths()) -> None:
    """The evaluate stage."""
    runtime = Runtime.create(params.train)
    model, record = load_model(out.best, runtime.device)
    classes = record.classes
    if list(classes) != list(params.data.classes):
        raise UserError(f"{out.best} was trained on classes {classes}, params.yaml has {params.data.classes}; "
                        "retrain (`dvc repro train`)")
    bins = params.evaluate.ece_bins
    _, val_labels, val_probs = _predict_split(params, runtime, model, record, "val")
    rows, labels, probs = _predict_split(params, runtime, model, record, "test")
    metrics = classification_metrics(labels, probs, classes, bins)
    metrics["validation"] = classification_metrics(val_labels, val_probs, classes, bins)
    metrics[BLOCK] = operating_points(val_labels, val_probs, labels, probs, classes, params.evaluate.unsafe_classes,
                                      params.evaluate.target_precisions)

    artifacts.write_json(out.test_metrics, metrics)
    artifacts.write_csv(out.predictions, predictions_table(rows, probs, classes))
    names = np.asarray(classes)
    artifacts.write_csv(out.plots / "confusion.csv",
                        pd.DataFrame({"actual": names[labels], "predicted": names[probs.argmax(1)]}))
    artifacts.write_csv(out.reliability, reliability_curve(probs, labels, bins))
    for old in out.roc.glob("*.csv"):
        old.unlink()
    for name, curve in roc_curves(labels, probs, classes).items():
        artifacts.write_csv(out.roc / f"{name}.csv", curve)
    print(f"test: accuracy {metrics['accuracy']:.3f}  macro-F1 {metrics['macro_f1']:.3f}  "
          f"ROC-AUC {metrics['roc_auc_ovr'] or float('nan'):.3f}  ECE {metrics['ece']:.3f}  "
          f"(validation macro-F1 {metrics['validation']['macro_f1']:.3f}) -> {out.test_metrics}", flush=True)
    for point in metrics[BLOCK]["targets"]:
        target = point["target_precision"]
        if point["reachable"]:
            test = point["test"]
            print(f"unsafe precision >= {target} on validation: threshold {point['threshold']:.4f}; on test "
                  f"precision {_fraction(test['precision'])}, recall {_fraction(test['recall'])}", flush=True)
        else:
            print(f"unsafe precision >= {target}: no threshold reaches it on validation", flush=True)


def _fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
