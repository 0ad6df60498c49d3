"""Task metrics as plain, JSON-ready dictionaries.

Every number is computed by scikit-learn (well tested, widely understood definitions);
this module only picks the right calls for each task, guards the cases where a metric is
undefined (a class absent from the test split, a single sample) and turns numpy values
into python ones, so that `json.dumps` works and NaN becomes `null` rather than the
non-standard `NaN` token other tools refuse to read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

TASKS = ("classification", "multilabel", "regression")

#: How many (true, predicted) pairs regression keeps for the report's scatter plot:
#: enough to see the shape, small enough to keep metrics.json readable.
SCATTER_SAMPLE = 1000


def to_jsonable(value: Any) -> Any:
    """Return `value` with numpy scalars/arrays made python and NaN/inf made None.

    JSON has no NaN or infinity; writing them would produce files that strict readers
    (browsers, jq, other languages) reject.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Single-label metrics from integer labels [N] and class probabilities [N, K].

    The prediction is the arg-max class. AUROC is positive-class for K == 2 and one-vs-rest
    macro for K > 2; it is undefined when a class never occurs in `y_true`, so it is then
    `None` with an `auroc_note` explaining why, instead of a misleading number.
    """
    y_true = np.asarray(y_true).astype(int).reshape(-1)
    proba = _as_2d(proba, "proba")
    n, k = proba.shape
    _check_rows(y_true, n)
    if len(class_names) != k:
        raise ValueError(f"{len(class_names)} class names for {k} probability columns")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= k):
        raise ValueError(f"labels must lie in 0..{k - 1}, got {y_true.min()}..{y_true.max()}")
    labels = list(range(k))
    proba = _normalise(proba)
    y_pred = proba.argmax(axis=1)

    out: dict[str, Any] = {
        "task": "classification",
        "n": n,
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
    }
    for average in ("macro", "micro"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        out.update({f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f})
    out["auroc"], note = _classification_auroc(y_true, proba, k, class_names)
    if note:
        out["auroc_note"] = note
    out["log_loss"] = skm.log_loss(y_true, proba, labels=labels)
    out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels)
    p, r, f, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    out["per_class"] = {
        str(name): {"precision": p[i], "recall": r[i], "f1": f[i], "support": int(s[i])}
        for i, name in enumerate(class_names)
    }
    out["class_names"] = [str(c) for c in class_names]
    return to_jsonable(out)


def multilabel_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    label_names: Sequence[str],
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Multi-label metrics from 0/1 targets [N, L] and per-label probabilities [N, L].

    A label is predicted when its probability is >= `threshold`. Macro AUROC averages only
    the labels whose targets contain both 0 and 1 (AUROC is undefined otherwise).
    """
    y_true = _as_2d(y_true, "y_true").astype(int)
    proba = _as_2d(proba, "proba")
    if y_true.shape != proba.shape:
        raise ValueError(f"y_true {y_true.shape} and proba {proba.shape} differ in shape")
    n, n_labels = proba.shape
    if len(label_names) != n_labels:
        raise ValueError(f"{len(label_names)} label names for {n_labels} columns")
    if n == 0:
        raise ValueError("cannot compute metrics on zero samples")
    y_pred = (proba >= threshold).astype(int)

    out: dict[str, Any] = {
        "task": "multilabel",
        "n": n,
        "threshold": float(threshold),
        "subset_accuracy": skm.accuracy_score(y_true, y_pred),
        "hamming_loss": skm.hamming_loss(y_true, y_pred),
    }
    for average in ("micro", "macro"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        out.update({f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f})
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    per_label: dict[str, Any] = {}
    aucs = []
    for j, name in enumerate(label_names):
        auc = None
        if len(np.unique(y_true[:, j])) == 2:
            auc = float(skm.roc_auc_score(y_true[:, j], proba[:, j]))
            aucs.append(auc)
        per_label[str(name)] = {
            "precision": p[j],
            "recall": r[j],
            "f1": f[j],
            "support": int(s[j]),
            "auroc": auc,
        }
    out["auroc"] = float(np.mean(aucs)) if aucs else None
    if len(aucs) < n_labels:
        out["auroc_note"] = (
            f"averaged over {len(aucs)} of {n_labels} labels; the others have only one "
            "class in y_true"
        )
    out["per_label"] = per_label
    out["label_names"] = [str(name) for name in label_names]
    return to_jsonable(out)


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, target_names: Sequence[str]
) -> dict[str, Any]:
    """MAE, RMSE and R² for one target [N] or several [N, R].

    With R > 1 the headline values are the mean over targets and `per_target` holds each.
    A subsample of (true, predicted) pairs is kept under `scatter` for the report's plot.
    """
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    yt, yp = y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)
    n, n_targets = yt.shape
    if len(target_names) != n_targets:
        raise ValueError(f"{len(target_names)} target names for {n_targets} targets")
    per_target = {
        str(name): _regression_one(yt[:, j], yp[:, j]) for j, name in enumerate(target_names)
    }

    out: dict[str, Any] = {"task": "regression", "n": n}
    for key in ("mae", "rmse", "r2"):
        values = [m[key] for m in per_target.values()]
        out[key] = float(np.mean(values)) if all(np.isfinite(values)) else None
    if n_targets > 1:
        out["per_target"] = per_target
    out["target_names"] = [str(name) for name in target_names]
    # n == 0 gives an empty index (linspace with num=0)
    keep = np.unique(np.linspace(0, n - 1, num=min(n, SCATTER_SAMPLE)).astype(int))
    out["scatter"] = {"y_true": yt[keep].tolist(), "y_pred": yp[keep].tolist()}
    return to_jsonable(out)


def compute_metrics(
    task: str, y_true: np.ndarray, outputs: np.ndarray, names: Sequence[str]
) -> dict[str, Any]:
    """Dispatch to the metrics of `task`; `outputs` are probabilities or, for regression,
    predicted values; `names` are the class, label or target names."""
    if task == "classification":
        return classification_metrics(y_true, outputs, names)
    if task == "multilabel":
        return multilabel_metrics(y_true, outputs, names)
    if task == "regression":
        return regression_metrics(y_true, outputs, names)
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


# ----------------------------------------------------------------------------- helpers


def _as_2d(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, K], got shape {array.shape}")
    return array


def _check_rows(y_true: np.ndarray, n: int) -> None:
    if len(y_true) != n:
        raise ValueError(f"{len(y_true)} labels for {n} rows of probabilities")
    if n == 0:
        raise ValueError("cannot compute metrics on zero samples")


def _normalise(proba: np.ndarray) -> np.ndarray:
    """Rows summing to exactly 1: float32 softmax outputs drift enough for sklearn to
    complain in log_loss and one-vs-rest AUROC."""
    proba = np.clip(proba, 0.0, None)
    sums = proba.sum(axis=1, keepdims=True)
    uniform = np.full_like(proba, 1.0 / proba.shape[1])
    return np.where(sums > 0, proba / np.where(sums > 0, sums, 1.0), uniform)


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """sklearn's balanced accuracy, minus its warning about predicted-only classes."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(skm.balanced_accuracy_score(y_true, y_pred))


def _classification_auroc(
    y_true: np.ndarray, proba: np.ndarray, k: int, class_names: Sequence[str]
) -> tuple[float | None, str | None]:
    missing = [str(class_names[c]) for c in range(k) if not np.any(y_true == c)]
    if k < 2:
        return None, "skipped: AUROC needs at least two classes"
    if missing:
        return None, f"skipped: class(es) absent from y_true: {', '.join(missing)}"
    if k == 2:
        return float(skm.roc_auc_score(y_true, proba[:, 1])), None
    score = skm.roc_auc_score(
        y_true, proba, multi_class="ovr", average="macro", labels=list(range(k))
    )
    return float(score), None


def _regression_one(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics on zero samples")
    r2 = skm.r2_score(y_true, y_pred) if len(y_true) > 1 else float("nan")
    return {
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "r2": float(r2),
    }
