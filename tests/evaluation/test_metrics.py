"""Metric values checked against numbers worked out by hand, not against sklearn itself."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from plait.evaluation import (
    classification_metrics,
    compute_metrics,
    multilabel_metrics,
    regression_metrics,
    to_jsonable,
)


def _proba_from_predictions(y_pred: list[int], k: int, confident: float = 0.8) -> np.ndarray:
    proba = np.full((len(y_pred), k), (1 - confident) / (k - 1))
    proba[np.arange(len(y_pred)), y_pred] = confident
    return proba


def test_three_class_known_values() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    y_pred = [0, 0, 1, 1, 1, 2, 2, 0]
    m = classification_metrics(y_true, _proba_from_predictions(y_pred, 3), ["a", "b", "c"])
    # Rows = true class, columns = predicted class, counted by hand.
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(5 / 8)
    # Per class: a and b are 2/3 precise and 2/3 recalled, c is 1/2 and 1/2.
    f1 = [2 / 3, 2 / 3, 1 / 2]
    assert m["f1_macro"] == pytest.approx(sum(f1) / 3)
    assert m["balanced_accuracy"] == pytest.approx(sum([2 / 3, 2 / 3, 1 / 2]) / 3)
    assert m["f1_micro"] == pytest.approx(5 / 8)
    assert m["per_class"]["c"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    # 5 right answers at p=0.8, 3 wrong ones where the true class got p=0.1.
    assert m["log_loss"] == pytest.approx((5 * -math.log(0.8) + 3 * -math.log(0.1)) / 8)
    assert m["n"] == 8
    assert 0.0 <= m["auroc"] <= 1.0 and "auroc_note" not in m


def test_perfect_predictions() -> None:
    y_true = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[y_true]
    m = classification_metrics(y_true, proba, ["x", "y", "z"])
    assert m["accuracy"] == 1.0
    assert m["f1_macro"] == 1.0
    assert m["auroc"] == pytest.approx(1.0)
    assert m["log_loss"] == pytest.approx(0.0, abs=1e-6)


def test_binary_auroc_is_positive_class() -> None:
    # Pairs (neg, pos): (0.1,0.35) ok, (0.1,0.8) ok, (0.4,0.35) wrong, (0.4,0.8) ok -> 3/4.
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(np.array([0, 0, 1, 1]), np.stack([1 - p1, p1], 1), ["no", "yes"])
    assert m["auroc"] == pytest.approx(0.75)


def test_auroc_skipped_when_a_class_is_absent() -> None:
    y_true = np.array([0, 1, 0, 1])
    proba = _proba_from_predictions([0, 1, 2, 1], 3)
    m = classification_metrics(y_true, proba, ["a", "b", "missing"])
    assert m["auroc"] is None
    assert "missing" in m["auroc_note"]
    assert m["per_class"]["missing"]["support"] == 0
    assert m["log_loss"] is not None  # still defined thanks to labels=range(K)


def test_unnormalised_float32_probabilities_are_accepted() -> None:
    proba = np.array([[0.7, 0.2, 0.1000001], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], dtype=np.float32)
    m = classification_metrics(np.array([0, 1, 2]), proba, ["a", "b", "c"])
    assert m["accuracy"] == 1.0


def test_classification_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="class names"):
        classification_metrics(np.array([0, 1]), np.eye(2), ["only one"])
    with pytest.raises(ValueError, match="labels"):
        classification_metrics(np.array([0, 1, 2]), np.eye(3)[:, :2], ["a", "b"])


def test_multilabel_known_values() -> None:
    y_true = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    y_pred = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 0]])
    proba = np.where(y_pred == 1, 0.9, 0.2)
    m = multilabel_metrics(y_true, proba, ["r", "g", "b"])
    assert m["subset_accuracy"] == pytest.approx(2 / 4)  # rows 0 and 2 exactly right
    assert m["hamming_loss"] == pytest.approx(2 / 12)  # two wrong cells of twelve
    # Label b: one true positive, one false positive, one false negative.
    assert m["per_label"]["b"]["f1"] == pytest.approx(0.5)
    assert m["per_label"]["r"]["f1"] == 1.0
    # 5 true positives, 1 false positive, 1 false negative overall.
    assert m["f1_micro"] == pytest.approx(5 / 6)
    assert m["n"] == 4


def test_multilabel_auroc_only_over_labels_with_both_classes() -> None:
    y_true = np.array([[1, 1], [0, 1], [1, 1]])
    proba = np.array([[0.9, 0.8], [0.1, 0.7], [0.8, 0.9]])
    m = multilabel_metrics(y_true, proba, ["mixed", "always"])
    assert m["auroc"] == pytest.approx(1.0)
    assert m["per_label"]["always"]["auroc"] is None
    assert "1 of 2" in m["auroc_note"]


def test_regression_known_values() -> None:
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    m = regression_metrics(y_true, np.array([2.0, 2.0, 3.0, 2.0]), ["price"])
    assert m["mae"] == pytest.approx(0.75)  # |errors| = 1, 0, 0, 2
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 4))
    perfect = regression_metrics(y_true, y_true, ["price"])
    assert perfect["r2"] == pytest.approx(1.0)
    assert perfect["mae"] == 0.0
    assert "per_target" not in perfect


def test_regression_multi_target_reports_each_and_mean() -> None:
    y_true = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    y_pred = y_true + np.array([[0.0, 3.0], [0.0, -3.0], [0.0, 0.0]])
    m = regression_metrics(y_true, y_pred, ["a", "b"])
    assert m["per_target"]["a"]["mae"] == 0.0
    assert m["per_target"]["b"]["mae"] == pytest.approx(2.0)
    assert m["mae"] == pytest.approx(1.0)
    assert m["r2"] == pytest.approx((1.0 + m["per_target"]["b"]["r2"]) / 2)
    assert len(m["scatter"]["y_true"]) == 3


def test_everything_is_strict_json() -> None:
    outputs = [
        compute_metrics("classification", np.array([0, 1]), np.eye(2), ["a", "b"]),
        compute_metrics("multilabel", np.eye(2, dtype=int), np.eye(2) * 0.9, ["a", "b"]),
        compute_metrics("regression", np.array([1.0]), np.array([2.0]), ["y"]),  # r2 undefined
    ]
    for m in outputs:
        json.dumps(m, allow_nan=False)
    assert outputs[2]["r2"] is None
    assert [m["task"] for m in outputs] == ["classification", "multilabel", "regression"]


def test_to_jsonable_replaces_nan_and_numpy() -> None:
    value = {"a": np.float32("nan"), "b": [np.int64(3), float("inf")], "c": np.arange(2)}
    assert to_jsonable(value) == {"a": None, "b": [3, None], "c": [0, 1]}


def test_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        compute_metrics("ranking", np.zeros(2), np.zeros(2), ["y"])
