"""Cutting validation and test rows out of the training file when no separate files exist.

All three methods are deterministic for a given `split.seed` and table, and return sorted
0-based positions so each split keeps the file's row order.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from plait.config import DataConfig
from plait.errors import DataError

log = logging.getLogger(__name__)

Indices = np.ndarray  # [n] int64 positions into the table


def split_table(
    df: pd.DataFrame, config: DataConfig, labels: Sequence[Any] | None = None
) -> tuple[Indices, Indices, Indices]:
    """(train, valid, test) positions by `config.split`.

    Args:
        df: the training table.
        config: `split.method`, `split.valid`, `split.test`, `split.seed`, `group`.
        labels: one stratification key per row (classification); without it a
            stratified split falls back to random (multilabel/regression).
    """
    split = config.split
    n = len(df)
    positions = np.arange(n)
    if split.valid + split.test >= 1.0:
        raise DataError(
            f"split fractions valid={split.valid} + test={split.test} leave no training rows"
        )
    if split.valid == 0 and split.test == 0:
        return positions, _empty(), _empty()

    if split.method == "group":
        if not config.group or config.group not in df.columns:
            raise DataError(f"grouped split needs the group column '{config.group}'")
        groups = _group_keys(df[config.group])
        rest, test = _group_cut(positions, groups, split.test, split.seed)
        inner = split.valid / (1.0 - split.test)
        train, valid = _group_cut(rest, groups, inner, split.seed + 1)
    else:
        keys = None
        if split.method == "stratified":
            if labels is None:
                log.info("stratified split needs class labels; using a random split")
            else:
                keys = np.array(
                    ["<missing>" if k is None else str(k) for k in labels], dtype=object
                )
        rest, test = _cut(positions, keys, split.test, split.seed)
        inner = split.valid / (1.0 - split.test)
        train, valid = _cut(rest, keys, inner, split.seed + 1)

    if len(train) == 0:
        raise DataError(f"the split left no training rows out of {n}; lower split.valid/test")
    return np.sort(train), np.sort(valid), np.sort(test)


def _empty() -> Indices:
    return np.zeros(0, dtype=np.int64)


def _n_out(n: int, fraction: float) -> int:
    return 0 if fraction <= 0 else min(n - 1, max(1, math.ceil(fraction * n)))


def _cut(
    positions: Indices, keys: np.ndarray | None, fraction: float, seed: int
) -> tuple[Indices, Indices]:
    """Split `positions` into (kept, taken) with `fraction` taken, stratified by `keys`."""
    n_out = _n_out(len(positions), fraction)
    if n_out == 0:
        return positions, _empty()
    if keys is not None:
        sub = keys[positions]
        _, counts = np.unique(sub, return_counts=True)
        if counts.min() >= 2 and n_out >= len(counts) and len(positions) - n_out >= len(counts):
            from sklearn.model_selection import StratifiedShuffleSplit

            splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_out, random_state=seed)
            kept, taken = next(splitter.split(positions, sub))
            return positions[kept], positions[taken]
        warnings.warn(
            "stratified split: a class has fewer than 2 rows or there are too few rows for "
            "every class in each split; falling back to a random split",
            stacklevel=3,
        )
    order = np.random.default_rng(seed).permutation(len(positions))
    return positions[order[n_out:]], positions[order[:n_out]]


def _group_keys(column: pd.Series) -> np.ndarray:
    """Group values as strings; a missing group makes a row its own group."""
    keys = []
    missing = 0
    for i, value in enumerate(column):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            keys.append(f"<row {i + 1}>")
            missing += 1
        else:
            keys.append(str(value))
    if missing:
        log.warning("%d row(s) have no group value; each is treated as its own group", missing)
    return np.array(keys, dtype=object)


def _group_cut(
    positions: Indices, groups: np.ndarray, fraction: float, seed: int
) -> tuple[Indices, Indices]:
    """Whole groups go to the taken side until it holds about `fraction` of the rows."""
    if fraction <= 0 or len(positions) == 0:
        return positions, _empty()
    sub = groups[positions]
    unique = np.unique(sub)
    if len(unique) < 2:
        raise DataError(
            f"grouped split needs at least 2 groups, found {len(unique)} in the group column"
        )
    from sklearn.model_selection import GroupShuffleSplit

    n_groups = min(len(unique) - 1, max(1, round(fraction * len(unique))))
    splitter = GroupShuffleSplit(n_splits=1, test_size=n_groups, random_state=seed)
    kept, taken = next(splitter.split(positions, groups=sub))
    return positions[kept], positions[taken]
