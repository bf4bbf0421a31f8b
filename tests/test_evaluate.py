"""metrics/test.json's numbers against scikit-learn and hand computation on fixed predictions, and its
moderation operating points."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score, log_loss,
                             precision_score, recall_score, roc_auc_score)

from efficientnext.evaluate import (classification_metrics, expected_calibration_error, predictions_table,
                                    reliability_curve, roc_curves)
from efficientnext.config import UserError
from efficientnext.operating_points import (default_threshold, operating_points, precision_recall_at,
                                            threshold_for_precision, unsafe_score)

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


# Operating points: unsafe = classes y and z of CLASSES; scores are built directly as two-column probabilities.
def scored(score: np.ndarray) -> np.ndarray:
    """Probabilities over CLASSES whose unsafe score (y + z) is `score`."""
    return np.stack([1 - score, score / 2, score / 2], axis=1)


def test_unsafe_score_sums_the_unsafe_classes():
    np.testing.assert_allclose(unsafe_score(PROBS, CLASSES, ["y", "z"]), PROBS[:, 1] + PROBS[:, 2])
    with pytest.raises(UserError, match=r"^unsafe classes \['w'\] are not among the model's classes"):
        unsafe_score(PROBS, CLASSES, ["w"])


def test_thresholds_reach_their_target_precision_on_validation_with_the_most_recall():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    unsafe = labels > 0
    score = np.clip(0.35 * unsafe + rng.normal(0.4, 0.2, 400), 0, 1)  # informative, overlapping
    for target in (0.7, 0.8, 0.9, 0.95):
        threshold = threshold_for_precision(unsafe, score, target)
        assert threshold is not None
        assert precision_recall_at(unsafe, score, threshold)["precision"] >= target
        lower = score[score < threshold]  # every lower threshold flags more and misses the target
        assert all(precision_recall_at(unsafe, score, t)["precision"] < target for t in np.unique(lower))
    points = operating_points(labels, scored(score), labels[:100], scored(score[:100]), CLASSES, ["y", "z"],
                              [0.9, 0.95])
    assert [p["target_precision"] for p in points["targets"]] == [0.9, 0.95]
    assert all(p["reachable"] and p["validation"]["precision"] >= p["target_precision"] for p in points["targets"])
    assert points["default_threshold"] == points["targets"][0]["threshold"]
    assert points["validation"]["roc_auc"] == pytest.approx(roc_auc_score(unsafe, score))
    assert points["validation"]["pr_auc"] == pytest.approx(average_precision_score(unsafe, score))
    # the test figures are measured at the validation threshold, not chosen on test
    first = points["targets"][0]
    assert first["test"] == precision_recall_at(unsafe[:100], score[:100], first["threshold"])


def test_an_unreachable_target_precision_is_recorded_not_a_crash():
    labels = np.array([0, 1, 2, 0, 1])
    score = np.array([0.9, 0.8, 0.7, 0.2, 0.1])  # the top-scored image is safe: precision 1.0 is out of reach
    points = operating_points(labels, scored(score), labels, scored(score), CLASSES, ["y", "z"], [1.0, 0.65])
    assert points["targets"][0] == {"target_precision": 1.0, "reachable": False, "threshold": None,
                                    "validation": None, "test": None}
    assert points["targets"][1]["threshold"] == pytest.approx(0.7)  # flags 3, 2 unsafe (0.67); 0.2: 0.5, 0.1: 0.6
    assert points["default_threshold"] == pytest.approx(0.7)
    none_unsafe = operating_points(np.zeros(4, int), scored(score[:4]), labels, scored(score), CLASSES, ["y", "z"],
                                   [0.9])
    assert none_unsafe["default_threshold"] is None and none_unsafe["validation"]["roc_auc"] is None


def test_default_threshold_comes_from_metrics_for_the_same_unsafe_classes(tmp_path):
    metrics = tmp_path / "metrics/test.json"
    with pytest.raises(UserError, match="not found: run `dvc repro evaluate`"):
        default_threshold(metrics, ["y"])
    metrics.parent.mkdir()
    metrics.write_text(json.dumps({"operating_points": {"unsafe_classes": ["y", "z"], "default_threshold": 0.25}}))
    assert default_threshold(metrics, ["y", "z"]) == 0.25
    with pytest.raises(UserError, match=r"thresholds are for unsafe classes \['y', 'z'\], params.yaml has \['y'\]"):
        default_threshold(metrics, ["y"])
