"""Cutting validation and test rows out of the training file when no separate files exist.

All three methods are deterministic for a given `split.seed` and table, and return sorted
0-based positions so each split keeps the file's row order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from plait.config import DataConfig
from plait.data.manifest import Table
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
    """Split `positions` into (kept, taken) with `fraction` taken, stratified by `keys`.

    Rows of a class with a single row here cannot be on both sides, so they stay on the
    kept (training) side and the other classes are stratified as asked: one typo'd label
    must not turn a stratified split into a random one. `prepare_data` names such classes.
    """
    n_out = _n_out(len(positions), fraction)
    if n_out == 0:
        return positions, _empty()
    if keys is not None:
        sub = keys[positions]
        _, inverse, counts = np.unique(sub, return_inverse=True, return_counts=True)
        rare = counts[inverse] < 2  # [n] rows whose class has a single row here
        common = positions[~rare]
        n_classes = int((counts >= 2).sum())
        if n_classes and n_out >= n_classes and len(common) - n_out >= n_classes:
            from sklearn.model_selection import StratifiedShuffleSplit

            if rare.any():
                log.debug("stratified split: %d single-row class(es) stay in train", rare.sum())
            splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_out, random_state=seed)
            kept, taken = next(splitter.split(common, sub[~rare]))
            return np.concatenate([common[kept], positions[rare]]), common[taken]
        log.warning(
            "stratified split: %d row(s) in %d class(es) with 2 or more rows are too few to "
            "put each class on both sides of a %d-row cut; using a random split instead",
            len(common),
            n_classes,
            n_out,
        )
    order = np.random.default_rng(seed).permutation(len(positions))
    return positions[order[n_out:]], positions[order[:n_out]]


def _group_keys(column: pd.Series) -> np.ndarray:
    """Group values as strings; a missing group makes a row its own group."""
    keys = []
    missing = 0
    for i, value in enumerate(column):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            keys.append(f"<row {Table.row_number(i)}>")
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
