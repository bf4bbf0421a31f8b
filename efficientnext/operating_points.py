"""Moderation operating points on the unsafe score (the summed probability of `evaluate.unsafe_classes`).

Thresholds are chosen on the validation split and only then measured on the test split, so the test
figures are not tuned on test. An image is flagged unsafe when its score is >= the threshold. For each
target precision the threshold is the lowest one whose validation precision reaches the target: the one
with the most recall among those that qualify. A target no threshold reaches is recorded as unreachable
(`reachable: false`, threshold null), not an error.

`operating_points` is metrics/test.json's `operating_points` block:
    unsafe_classes, validation {images, unsafe, roc_auc, pr_auc}, test {same},
    targets [{target_precision, reachable, threshold, validation {precision, recall}, test {precision, recall}}],
    default_threshold (the first reachable target's threshold, in params order; null if none is reachable).
PR-AUC is scikit-learn's average precision (the step-wise area under the precision-recall curve).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from efficientnext.config import UserError

BLOCK = "operating_points"  # the key in metrics/test.json


def unsafe_score(probs: np.ndarray, classes: list[str], unsafe_classes: list[str]) -> np.ndarray:
    """Per image, the summed probability of the unsafe classes (float64, summed in class order)."""
    missing = [name for name in unsafe_classes if name not in classes]
    if missing:
        raise UserError(f"unsafe classes {missing} are not among the model's classes {classes}")
    columns = [index for index, name in enumerate(classes) if name in unsafe_classes]
    return np.asarray(probs, dtype=np.float64)[:, columns].sum(axis=1)


def _rank_scores(is_unsafe: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    both = 0 < is_unsafe.sum() < len(is_unsafe)  # AUCs need both outcomes present
    return {"images": int(len(is_unsafe)), "unsafe": int(is_unsafe.sum()),
            "roc_auc": float(roc_auc_score(is_unsafe, score)) if both else None,
            "pr_auc": float(average_precision_score(is_unsafe, score)) if both else None}


def precision_recall_at(is_unsafe: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float | None]:
    """Precision (null when nothing is flagged) and recall (null without unsafe images) at `threshold`."""
    flagged = score >= threshold
    hits = int((flagged & is_unsafe).sum())
    return {"precision": hits / int(flagged.sum()) if flagged.any() else None,
            "recall": hits / int(is_unsafe.sum()) if is_unsafe.any() else None}


def threshold_for_precision(is_unsafe: np.ndarray, score: np.ndarray, target: float) -> float | None:
    """The lowest threshold whose precision on these images is >= target (None: no threshold reaches it)."""
    if not is_unsafe.any():
        return None
    precision, _, thresholds = precision_recall_curve(is_unsafe, score)
    reaching = np.flatnonzero(precision[:-1] >= target)  # the curve's last point has no threshold
    return float(thresholds[reaching[0]]) if len(reaching) else None


def operating_points(val_labels: np.ndarray, val_probs: np.ndarray, test_labels: np.ndarray,
                     test_probs: np.ndarray, classes: list[str], unsafe_classes: list[str],
                     targets: list[float]) -> dict[str, Any]:
    unsafe_index = [classes.index(name) for name in unsafe_classes if name in classes]
    val_unsafe, test_unsafe = np.isin(val_labels, unsafe_index), np.isin(test_labels, unsafe_index)
    val_score = unsafe_score(val_probs, classes, unsafe_classes)
    test_score = unsafe_score(test_probs, classes, unsafe_classes)
    points = []
    for target in targets:
        threshold = threshold_for_precision(val_unsafe, val_score, target)
        if threshold is None:
            points.append({"target_precision": target, "reachable": False, "threshold": None,
                           "validation": None, "test": None})
        else:
            points.append({"target_precision": target, "reachable": True, "threshold": threshold,
                           "validation": precision_recall_at(val_unsafe, val_score, threshold),
                           "test": precision_recall_at(test_unsafe, test_score, threshold)})
    reachable = [point["threshold"] for point in points if point["reachable"]]
    return {"unsafe_classes": list(unsafe_classes), "validation": _rank_scores(val_unsafe, val_score),
            "test": _rank_scores(test_unsafe, test_score), "targets": points,
            "default_threshold": reachable[0] if reachable else None}


def default_threshold(test_metrics: Path, unsafe_classes: list[str]) -> float | None:
    """The default threshold evaluate chose (metrics/test.json) for these unsafe classes, None when no target
    precision was reached; UserError when there is nothing to take it from (no evaluation yet, other unsafe
    classes): pass a threshold instead."""
    if not test_metrics.is_file():
        raise UserError(f"{test_metrics} not found: run `dvc repro evaluate` for the default threshold, or pass "
                        "--threshold")
    block = json.loads(test_metrics.read_text()).get(BLOCK)
    if block is None:
        raise UserError(f"{test_metrics} has no {BLOCK}: rerun `dvc repro evaluate`, or pass --threshold")
    if block["unsafe_classes"] != list(unsafe_classes):
        raise UserError(f"{test_metrics}'s thresholds are for unsafe classes {block['unsafe_classes']}, params.yaml "
                        f"has {list(unsafe_classes)}: rerun `dvc repro evaluate`, or pass --threshold")
    return block["default_threshold"]
