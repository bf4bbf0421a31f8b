"""The per-epoch validation scores (scikit-learn), shared by the engine, the sweep and the evaluate stage."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def summary_scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """accuracy and macro precision/recall/F1 over all `num_classes` (absent classes score 0)."""
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(num_classes)), average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "macro_precision": float(precision),
            "macro_recall": float(recall), "macro_f1": float(f1)}


def roc_auc_ovr(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> float | None:
    """Macro one-vs-rest ROC-AUC; None (JSON null) when a class is absent, where it is undefined."""
    if len(np.unique(y_true)) < num_classes:
        return None
    return float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=list(range(num_classes))))
