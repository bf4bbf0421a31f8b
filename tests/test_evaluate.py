"""metrics/test.json's numbers against scikit-learn and hand computation on fixed predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, log_loss, precision_score, recall_score,
                             roc_auc_score)

from efficientnext.evaluate import (classification_metrics, expected_calibration_error, predictions_table,
                                    reliability_curve, roc_curves)

CLASSES = ["x", "y", "z"]
Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 2, 0])
PROBS = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4],
                  [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25], [0.9, 0.05, 0.05]])
Y_PRED = PROBS.argmax(1)


def test_metrics_match_scikit_learn():
    m = classification_metrics(Y_TRUE, PROBS, CLASSES, ece_bins=10)
    assert m["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    assert m["macro_precision"] == pytest.approx(precision_score(Y_TRUE, Y_PRED, average="macro"))
    assert m["macro_recall"] == pytest.approx(recall_score(Y_TRUE, Y_PRED, average="macro"))
    assert m["macro_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    assert m["roc_auc_ovr"] == pytest.approx(roc_auc_score(Y_TRUE, PROBS, multi_class="ovr"))
    assert m["nll"] == pytest.approx(log_loss(Y_TRUE, PROBS))
    assert m["confusion_matrix"] == confusion_matrix(Y_TRUE, Y_PRED).tolist()
    per_f1 = f1_score(Y_TRUE, Y_PRED, average=None)
    assert [m["per_class"][c]["f1"] for c in CLASSES] == pytest.approx(per_f1.tolist())
    assert [m["per_class"][c]["support"] for c in CLASSES] == [3, 2, 3]


def test_brier_and_normalised_confusion_by_hand():
    m = classification_metrics(Y_TRUE, PROBS, CLASSES, ece_bins=10)
    onehot = np.eye(3)[Y_TRUE]
    assert m["brier"] == pytest.approx(((PROBS - onehot) ** 2).sum(1).mean())
    counts = np.array(m["confusion_matrix"])
    np.testing.assert_allclose(m["confusion_matrix_normalized"], counts / counts.sum(1, keepdims=True))


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.4, 0.6]])
    y_true = np.array([0, 1, 0, 1])
    # bins of width 0.5: (0.5, 1.0] holds all four (confidences 0.9, 0.8, 0.6, 0.6; 3 of 4 correct)
    assert expected_calibration_error(probs, y_true, bins=2) == pytest.approx(abs(0.75 - 0.725))
    # bins of width 0.1: 0.9 → right; 0.8 → wrong; two 0.6 → both right
    expected = (abs(1 - 0.9) + abs(0 - 0.8) + 2 * abs(1 - 0.6)) / 4
    assert expected_calibration_error(probs, y_true, bins=10) == pytest.approx(expected)
    curve = reliability_curve(probs, y_true, bins=10)
    assert curve["count"].tolist() == [2, 1, 1] and curve["accuracy"].tolist() == [1.0, 0.0, 1.0]


def test_missing_class_gives_null_auc_not_a_crash():
    m = classification_metrics(np.array([0, 0, 1]), PROBS[:3], CLASSES, ece_bins=5)
    assert m["roc_auc_ovr"] is None and m["per_class"]["z"]["support"] == 0


def test_plot_tables():
    rows = pd.DataFrame({"path": [f"{i}.jpg" for i in range(len(Y_TRUE))], "label": np.array(CLASSES)[Y_TRUE]})
    table = predictions_table(rows, PROBS, CLASSES)
    assert list(table.columns) == ["path", "label", "predicted", *CLASSES]
    assert table["predicted"].tolist() == np.array(CLASSES)[Y_PRED].tolist()
    curves = roc_curves(Y_TRUE, PROBS, CLASSES)
    assert set(curves) == set(CLASSES) and all(list(c.columns) == ["fpr", "tpr"] for c in curves.values())
