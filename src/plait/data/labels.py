"""Label spaces for classification, multilabel and regression.

A `LabelSpace` is fitted on the training split only, checks every other row against it
(unknown classes, missing values, text in numeric columns) and encodes/decodes targets.
It is JSON-able, so a saved model maps its outputs back to label names without any data.

Label values are compared as strings ("3", 3 and 3.0 are the same class), so integer
labels read from CSV (as text), Parquet or JSON stay usable; integer-like classes sort
numerically. A text cell is a class name as written, `None`, `NA` and `null` included;
only an empty or blank cell is a missing label.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from plait.data.manifest import Table
from plait.errors import RowProblem

TASKS = ("classification", "multilabel", "regression")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
#: The words pandas read as booleans when it parsed CSV cells; kept as the same classes
#: so models trained then still know the labels of files read as text now.
_BOOLEAN_WORDS = {"True": "True", "TRUE": "True", "true": "True"} | {
    "False": "False",
    "FALSE": "False",
    "false": "False",
}


def label_key(value: Any) -> str | None:
    """A cell -> its class name, or None when missing (None, NaN, blank).

    Numbers compare by value, whether typed or written as text: 3, 3.0, "3", "3.0" and
    "003" are the class "3" (as when CSV cells were parsed as numbers). Any other text
    is its own class, stripped of surrounding spaces: "NA", "None" and "nan" included.
    """
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        return _float_key(float(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, str):
        return _text_key(value)
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return _text_key(str(value))


def _float_key(number: float) -> str:
    return str(int(number)) if number.is_integer() else str(number)


def _text_key(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if _INTEGER.fullmatch(text):
        return str(int(text))  # exact at any size; "007" -> "7"
    if _DECIMAL.fullmatch(text):
        number = float(text)
        return _float_key(number) if math.isfinite(number) else text
    return _BOOLEAN_WORDS.get(text, text)


def label_number(value: Any) -> float | None:
    """A regression cell -> its number (NaN/inf kept, for the caller to reject), or None
    when it is missing or not a number. Text must be a plain decimal number ("1_000",
    "1,5" are not)."""
    if label_key(value) is None:
        return None
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    text = str(value).strip()
    if _DECIMAL.fullmatch(text) or text.lower().lstrip("+-") in ("inf", "infinity", "nan"):
        return float(text)
    return None


def _sorted_classes(names: Sequence[str]) -> list[str]:
    def is_int(s: str) -> bool:
        return s.lstrip("-").isdigit()

    if names and all(is_int(n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


class LabelSpace:
    """What the model predicts.

    Attributes:
        task: `classification`, `multilabel` or `regression`.
        columns: the label column(s) in the manifest.
        names: one name per model output (classes, labels or regression targets).
        counts: training-split count per name (classification: rows per class;
            multilabel: rows where the label is on).
        separator: multilabel with one column: the string joining labels (`a|b`).
        mean / std: regression standardisation (None when not standardised).
    """

    def __init__(
        self,
        task: str,
        columns: Sequence[str],
        names: Sequence[str],
        counts: Sequence[int] | None = None,
        separator: str = "|",
        mean: Iterable[float] | None = None,
        std: Iterable[float] | None = None,
        num_rows: int = 0,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; use one of {TASKS}")
        self.task = task
        self.columns = list(columns)
        self.names = list(names)
        self.counts = [int(c) for c in counts] if counts is not None else [0] * len(self.names)
        self.separator = separator
        self.mean = None if mean is None else [float(v) for v in mean]
        self.std = None if std is None else [float(v) for v in std]
        self.num_rows = int(num_rows)
        self.index = {name: i for i, name in enumerate(self.names)}

    # ------------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        columns: Sequence[str],
        task: str,
        separator: str = "|",
        standardize: bool = True,
    ) -> LabelSpace:
        """Learn the label space from the training rows; invalid cells are ignored here
        (they are reported by `validate`)."""
        columns = list(columns)
        if task == "classification":
            if len(columns) != 1:
                raise ValueError("classification takes exactly one label column")
            keys = [k for k in map(label_key, frame[columns[0]]) if k is not None]
            counter = Counter(keys)
            names = _sorted_classes(list(counter))
            return cls(task, columns, names, [counter[n] for n in names], num_rows=len(keys))
        if task == "multilabel":
            if len(columns) == 1:
                tag_counts: Counter[str] = Counter()
                for value in frame[columns[0]]:
                    tag_counts.update(set(_split(value, separator)))
                names = sorted(tag_counts)
                counts = [tag_counts[n] for n in names]
            else:
                names = list(columns)
                counts = [sum(_flag(v) is True for v in frame[c]) for c in columns]
            return cls(task, columns, names, counts, separator=separator, num_rows=len(frame))
        # regression
        values = _numbers(frame, columns)  # [N, R], NaN where a cell is not a number
        mean = std = None
        if standardize:
            mean = np.nanmean(values, axis=0) if len(values) else np.zeros(len(columns))
            std = np.nanstd(values, axis=0) if len(values) else np.ones(len(columns))
            mean = np.nan_to_num(mean)
            std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return cls(
            task,
            columns,
            columns,
            [len(frame)] * len(columns),
            mean=mean,
            std=std,
            num_rows=len(frame),
        )

    def recount(self, frame: pd.DataFrame) -> LabelSpace:
        """The same outputs (names and order), with counts, row total and regression
        statistics taken from `frame`: the training rows actually used once bad rows are
        skipped. A name with no row left keeps its output, counted 0."""
        fitted = LabelSpace.fit(
            frame, self.columns, self.task, self.separator, standardize=self.mean is not None
        )
        found = dict(zip(fitted.names, fitted.counts, strict=True))
        return LabelSpace(
            self.task,
            self.columns,
            self.names,
            [found.get(name, 0) for name in self.names],
            separator=self.separator,
            mean=fitted.mean,
            std=fitted.std,
            num_rows=fitted.num_rows,
        )

    @property
    def num_outputs(self) -> int:
        return len(self.names)

    # ------------------------------------------------------------------ validation
    def validate(
        self,
        frame: pd.DataFrame,
        file: str,
        positions: Sequence[int] | np.ndarray | None = None,
    ) -> list[RowProblem]:
        """One RowProblem per bad label cell. `positions` are 0-based table positions of
        `frame`'s rows (default: `frame`'s index), reported as 1-based row numbers."""
        positions = list(frame.index if positions is None else positions)
        problems = []
        for column in self.columns:
            for pos, value in zip(positions, frame[column], strict=True):
                reason = self.check_value(value, column)
                if reason:
                    problems.append(RowProblem(file, Table.row_number(pos), column, reason))
        return problems

    def check_value(self, value: Any, column: str) -> str | None:
        """Why this label cell is invalid, or None when it is fine."""
        if self.task == "classification":
            key = label_key(value)
            if key is None:
                return "missing label"
            if key not in self.index:
                return f"unknown label '{key}' (not in the training split's classes)"
            return None
        if self.task == "multilabel":
            if len(self.columns) == 1:
                unknown = [t for t in _split(value, self.separator) if t not in self.index]
                if unknown:
                    return f"unknown label(s) {unknown} (not in the training split)"
                return None
            flag = _flag(value)
            if flag is None:
                return (
                    "missing label"
                    if label_key(value) is None
                    else (f"expected 0/1 for a multilabel column, got '{value}'")
                )
            return None
        if label_key(value) is None:
            return "missing label (NaN or empty)"
        number = label_number(value)
        if number is None:
            return f"wrong label type: '{value}' is not a number (regression target)"
        if not math.isfinite(number):
            return f"label is {number} (regression targets must be finite)"
        return None

    # ------------------------------------------------------------------- encoding
    def encode(self, values: pd.DataFrame | pd.Series | Sequence[Any]) -> Tensor:
        """Label cells -> targets: [N] long (classification), [N, L] float (multilabel),
        [N, R] float, standardised (regression). `values` is a frame holding the label
        columns, or a series/list when there is one column. Cells must be valid."""
        frame = self._as_frame(values)
        if self.task == "classification":
            ids = [self._class_id(v) for v in frame[self.columns[0]]]
            return torch.tensor(ids, dtype=torch.long)
        if self.task == "multilabel":
            out = torch.zeros(len(frame), self.num_outputs)
            if len(self.columns) == 1:
                for i, value in enumerate(frame[self.columns[0]]):
                    for tag in _split(value, self.separator):
                        out[i, self.index[tag]] = 1.0
            else:
                for j, column in enumerate(self.columns):
                    out[:, j] = torch.tensor([_flag_value(v) for v in frame[column]])
            return out
        out = torch.tensor(_numbers(frame, self.columns), dtype=torch.float32)  # [N, R]
        if self.mean is not None and self.std is not None:
            out = (out - torch.tensor(self.mean)) / torch.tensor(self.std)
        return out

    def _class_id(self, value: Any) -> int:
        """A valid classification cell -> its class index (KeyError when not a class)."""
        key = label_key(value)
        if key is None:
            raise KeyError(f"missing label {value!r} in column '{self.columns[0]}'")
        return self.index[key]

    def _as_frame(self, values: Any) -> pd.DataFrame:
        if isinstance(values, pd.DataFrame):
            return values
        if len(self.columns) != 1:
            raise ValueError(f"pass a DataFrame with columns {self.columns}")
        return pd.DataFrame({self.columns[0]: list(values)})

    # ------------------------------------------------------------------- decoding
    def decode(self, outputs: Tensor, threshold: float = 0.5) -> list[Any]:
        """Model outputs -> label values per row.

        classification: logits/probabilities [N, K] or class ids [N] -> class names;
        multilabel: probabilities [N, L] -> list of names at or over `threshold`;
        regression: [N, R] (standardised) -> lists of R floats in the original units.
        """
        outputs = outputs.detach().cpu()
        if self.task == "classification":
            ids = outputs.argmax(-1) if outputs.dim() == 2 else outputs
            return [self.names[int(i)] for i in ids]
        if self.task == "multilabel":
            on = outputs >= threshold
            return [[n for n, flag in zip(self.names, row, strict=True) if flag] for row in on]
        return self.destandardize(outputs).tolist()

    def destandardize(self, outputs: Any) -> Any:
        """Regression outputs [N, R] (tensor or numpy array) -> original units, same type."""
        if self.mean is None or self.std is None:
            return outputs
        if isinstance(outputs, Tensor):
            std = torch.tensor(self.std, dtype=outputs.dtype, device=outputs.device)
            mean = torch.tensor(self.mean, dtype=outputs.dtype, device=outputs.device)
            return outputs * std + mean
        array = np.asarray(outputs)
        return array * np.asarray(self.std, dtype=array.dtype) + np.asarray(
            self.mean, dtype=array.dtype
        )

    denormalize = destandardize

    def class_weights(self, dataset: Any = None) -> Tensor | None:
        """Balanced weights: classification [K] = N / (K * n_k); multilabel [L] positive
        weights = negatives / positives; regression None.

        Counts come from `dataset.labels` (encoded targets of the rows actually trained
        on, e.g. `PreparedData.train`) when given, else from the fitted training split.
        """
        if self.task == "regression" or not self.names:
            return None
        targets = getattr(dataset, "labels", None)
        if targets is not None and len(targets):
            if self.task == "classification":
                counts = torch.bincount(targets.long(), minlength=self.num_outputs).float()
            else:
                counts = targets.float().sum(0)
            total = float(len(targets))
        else:
            counts = torch.tensor(self.counts, dtype=torch.float32)
            total = float(max(self.num_rows, 1))
        if self.task == "classification":
            # an unseen class counts as 1 row (a finite, large weight)
            return counts.sum() / (len(counts) * counts.clamp_min(1.0))
        counts = counts.clamp_min(1.0)
        return ((total - counts).clamp_min(0.0) / counts).clamp_min(1e-3)

    # --------------------------------------------------------------------- saving
    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "columns": self.columns,
            "names": self.names,
            "counts": self.counts,
            "separator": self.separator,
            "mean": self.mean,
            "std": self.std,
            "num_rows": self.num_rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSpace:
        return cls(**data)

    def __repr__(self) -> str:
        shown = ", ".join(self.names[:8]) + (" ..." if len(self.names) > 8 else "")
        return f"LabelSpace({self.task}, {self.num_outputs} outputs: {shown})"


#: the target of a row whose answer is not in the vocabulary (never a class; scored wrong)
UNKNOWN_ANSWER = -100


class AnswerSpace(LabelSpace):
    """The answer vocabulary of a question answerer: a classification label space (saved
    the same way) that accepts answers it does not know in validation and test rows. Such
    a row encodes as `UNKNOWN_ANSWER`: its loss is not scored and it always counts wrong,
    since the model cannot give that answer; a missing answer is still a bad row."""

    @classmethod
    def of(cls, labels: LabelSpace) -> AnswerSpace:
        return cls.from_dict(labels.to_dict())  # type: ignore[return-value]

    def check_value(self, value: Any, column: str) -> str | None:
        return "missing label" if label_key(value) is None else None

    def _class_id(self, value: Any) -> int:
        key = label_key(value)
        return UNKNOWN_ANSWER if key is None else self.index.get(key, UNKNOWN_ANSWER)


def _split(value: Any, separator: str) -> list[str]:
    """A one-column multilabel cell `a|b` -> ["a", "b"]; a missing cell is the empty set."""
    key = label_key(value)
    if key is None:
        return []
    return [t.strip() for t in key.split(separator) if t.strip()]


def _flag_value(value: Any) -> float:
    """A valid 0/1 multilabel cell -> 1.0 / 0.0 (TypeError when it is not a flag)."""
    flag = _flag(value)
    if flag is None:
        raise TypeError(f"expected 0/1 for a multilabel column, got {value!r}")
    return float(flag)


def _flag(value: Any) -> bool | None:
    """A 0/1 multilabel cell -> bool, or None when missing or not a flag."""
    key = label_key(value)
    if key is None:
        return None
    key = key.lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    return None


def _numbers(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Regression cells -> [N, R] float64, NaN where a cell is missing or not a number."""
    out = np.full((len(frame), len(columns)), np.nan)
    for j, column in enumerate(columns):
        for i, value in enumerate(frame[column].tolist()):
            number = label_number(value)
            if number is not None:
                out[i, j] = number
    return out
