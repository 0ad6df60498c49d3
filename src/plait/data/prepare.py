"""From a config to ready datasets: read, check columns, split, fit, validate.

Order matters for honesty and speed: the split is made on the raw table (so which rows are
bad never changes which split a row lands in), the label space and the text vocabulary are
fitted on the training split only, and every row is validated before any training starts,
so a broken file is reported with all its problems at once, not hours into a run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plait.config import PlaitConfig, SplitConfig
from plait.data.bad_rows import BadRows, OnError, check_on_error
from plait.data.dataset import MultimodalDataset, handle_problems, validate_rows
from plait.data.labels import AnswerSpace, LabelSpace, label_key
from plait.data.manifest import ROW_NUMBERING, Table, check_columns, id_text, read_table
from plait.data.processor import Processor, build_processor
from plait.data.splits import split_table
from plait.errors import DataError, RowProblem

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Everything the trainer needs from the data layer."""

    train: MultimodalDataset
    valid: MultimodalDataset | None
    test: MultimodalDataset | None
    processors: dict[str, Processor]
    labels: LabelSpace | None  # None for an alignment run without a label column
    problems: list[RowProblem] = field(default_factory=list)  # ordered by file, then row
    skipped_rows: dict[str, int] = field(default_factory=dict)  # split -> bad rows left out


def prepare_data(config: PlaitConfig, progress: bool | None = None) -> PreparedData:
    """Build train/valid/test datasets, fitted processors and the label space.

    Raises:
        DataError: missing columns; with `data.on_error: raise`, every bad row of every
            table at once; or no training rows left.
    """
    progress = config.training.progress if progress is None else progress
    data = config.data
    train_table = read_table(data.train)
    check_columns(train_table, config)
    tables = {"train": train_table}
    for split in ("valid", "test"):
        source = getattr(data, split)
        if source:
            tables[split] = read_table(source)
            check_columns(tables[split], config)

    # (table, positions) for each split
    parts: dict[str, tuple[Table, np.ndarray]] = {}
    if "valid" in tables and "test" in tables:
        parts["train"] = (train_table, np.arange(len(train_table)))
    else:
        split_cfg = data.split.model_copy(
            update={
                "valid": 0.0 if "valid" in tables else data.split.valid,
                "test": 0.0 if "test" in tables else data.split.test,
            }
        )
        keys = None
        if config.head.task == "classification" and config.label_columns:
            keys = [label_key(v) for v in train_table.frame[config.label_columns[0]]]
        train_idx, valid_idx, test_idx = split_table(
            train_table.frame, data.model_copy(update={"split": split_cfg}), keys
        )
        parts["train"] = (train_table, train_idx)
        _say_what_was_cut(train_table, split_cfg, len(valid_idx), len(test_idx))
        if "valid" not in tables and len(valid_idx):
            parts["valid"] = (train_table, valid_idx)
        if "test" not in tables and len(test_idx):
            parts["test"] = (train_table, test_idx)
    for split in ("valid", "test"):
        if split in tables:
            parts[split] = (tables[split], np.arange(len(tables[split])))

    train_rows = train_table.frame.iloc[parts["train"][1]]
    labels = _fit_labels(config, train_rows) if config.label_columns else None
    processors = {name: build_processor(m) for name, m in config.modalities.items()}

    good: dict[str, np.ndarray] = {}
    problems: list[RowProblem] = []
    skipped: dict[str, int] = {}
    for split, (table, rows) in parts.items():
        good[split], found = validate_rows(
            table,
            config,
            processors,
            labels,
            rows,
            on_error="collect",
            progress=progress,
            description=f"checking {split} rows",
        )
        problems += found
        if found:
            skipped[split] = len({p.row for p in found})
    # one list by row, not by split: the train file's splits interleave its rows
    file_order = {name: i for i, name in enumerate(t.name for t in tables.values())}
    problems.sort(key=lambda p: (file_order.get(p.file, len(file_order)), p.row, p.column or ""))
    names = ", ".join(sorted({t.name for t, _ in parts.values()}))
    total = sum(len(rows) for _, rows in parts.values())
    handle_problems(problems, data.on_error, names, total)
    if len(good["train"]) == 0:
        raise DataError(f"{train_table.name}: no valid training rows left", problems)
    if labels is not None:
        labels = _recount_labels(labels, train_table, good["train"])
        if config.vqa is not None:  # answers unknown to training are scored wrong
            labels = AnswerSpace.of(labels)

    for processor in processors.values():
        processor.fit(train_table.frame[processor.column].iloc[good["train"]].tolist())

    seed = config.training.seed

    def dataset(split: str) -> MultimodalDataset | None:
        if split not in parts or len(good[split]) == 0:
            return None
        table, _ = parts[split]
        return _dataset(table, good[split], config, processors, labels, split == "train", seed)

    train = dataset("train")
    assert train is not None
    return PreparedData(
        train, dataset("valid"), dataset("test"), processors, labels, problems, skipped
    )


def _say_what_was_cut(table: Table, split: SplitConfig, valid: int, test: int) -> None:
    """Log which rows of the training file became validation and test rows, and why, so
    a user who gave no test file knows where the test numbers come from and how to
    change it."""
    total = len(table.frame)
    how = f"{split.method} split, seed {split.seed}"
    if valid:
        log.info(
            "no validation file (data.valid): %d of %d rows of %s (split.valid=%g, %s) are "
            "the validation split, which chooses the best epoch and stops early; give "
            "data.valid to use your own",
            valid,
            total,
            table.name,
            split.valid,
            how,
        )
    if test:
        log.info(
            "no test file (data.test): %d of %d rows of %s (split.test=%g, %s) are held "
            "out as the test split, scored once after training so its numbers are not "
            "fitted to it (runs are compared on validation); give data.test to use your "
            "own, or set data.split.test: 0 to train on these rows",
            test,
            total,
            table.name,
            split.test,
            how,
        )


def _fit_labels(config: PlaitConfig, train_rows: pd.DataFrame) -> LabelSpace:
    labels = LabelSpace.fit(
        train_rows,
        config.label_columns,
        config.head.task,
        separator=config.head.label_separator,
    )
    if labels.num_outputs == 0 or (config.head.task == "classification" and labels.num_outputs < 2):
        found_names = ", ".join(labels.names) or "none"
        raise DataError(
            f"{config.data.train}: the training split needs at least 2 classes / 1 label "
            f"in {config.label_columns}; found: {found_names}"
        )
    return AnswerSpace.of(labels) if config.vqa is not None else labels


def _recount_labels(labels: LabelSpace, table: Table, rows: np.ndarray) -> LabelSpace:
    """Counts from the training rows actually used, with a warning naming each class
    that has a single row (often a typo) or none left (all its rows were skipped).

    Raises:
        DataError: fewer than 2 classes keep any training row.
    """
    frame = table.frame.iloc[rows]
    labels = labels.recount(frame)
    if labels.task == "regression":
        return labels
    kind = "class" if labels.task == "classification" else "label"
    counts = dict(zip(labels.names, labels.counts, strict=True))
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        log.warning(
            "%s: %s(es) %s have no usable training row (their rows were skipped as bad); "
            "the model keeps an output for them but cannot learn them",
            table.name,
            kind,
            ", ".join(f"'{n}'" for n in empty),
        )
    single = [name for name, count in counts.items() if count == 1]
    if single:
        targets = labels.encode(frame[labels.columns])  # [N] class ids or [N, L] flags
        shown = []
        for name in single[:10]:
            index = labels.index[name]
            hit = targets == index if targets.dim() == 1 else targets[:, index] > 0  # [N]
            row = Table.row_number(int(rows[int(hit.nonzero()[0, 0])]))
            shown.append(f"'{name}' (row {row})")
        more = f" and {len(single) - 10} more" if len(single) > 10 else ""
        log.warning(
            "%s: %d %s(es) with only 1 training row: %s%s. A typo or an unknown label? "
            "Each is learnt from that one row; fix the label or add examples.",
            table.name,
            len(single),
            kind,
            ", ".join(shown),
            more,
        )
    if labels.task == "classification" and len(counts) - len(empty) < 2:
        raise DataError(
            f"{table.name}: after skipping bad rows, fewer than 2 classes have a training "
            f"row in {labels.columns}; found: {', '.join(n for n in counts if n not in empty)}"
        )
    return labels


def prepare_inference(
    table_source: str | Path | pd.DataFrame | Table,
    config: PlaitConfig,
    processors: dict[str, Processor],
    labels: LabelSpace | None,
    require_labels: bool = False,
    progress: bool | None = None,
    on_error: OnError = "raise",
) -> tuple[MultimodalDataset, list[RowProblem]]:
    """A dataset over new rows for predict/evaluate, using already-fitted processors.

    With `require_labels` the label columns must exist and be valid and the dataset
    carries encoded labels (evaluate); otherwise labels are ignored (predict).

    `on_error` is the caller's choice, never the training config's `data.on_error`:
    `raise` refuses a table with any bad row (naming the first and how many); `skip`
    returns a dataset over the good rows and every problem, sorted by row.

    Raises:
        DataError: missing columns; a bad row under `raise`; no usable row at all.
    """
    on_error = check_on_error(on_error)
    progress = config.training.progress if progress is None else progress
    table = read_table(table_source)
    check_columns(table, config, require_labels=require_labels)
    use_labels = labels if require_labels else None
    good, problems = validate_rows(
        table,
        config,
        processors,
        use_labels,
        on_error="collect",
        progress=progress,
        description=f"checking {table.name}",
    )
    report = BadRows(table.name, len(table), problems)
    if report and on_error == "raise":
        raise report.refusal()
    if len(good) == 0:
        raise DataError(
            f"{table.name}: none of its {len(table)} row(s) can be used ({ROW_NUMBERING})",
            report.problems,
        )
    dataset = _dataset(table, good, config, processors, use_labels, False, config.training.seed)
    return dataset, report.problems


def row_ids(table: Table, config: PlaitConfig, positions: np.ndarray | list[int]) -> list[str]:
    """The id of each 0-based table position, as predictions write it: the `data.id`
    cell when the config has one, else the 1-based row number."""
    if not config.data.id:
        return [str(Table.row_number(p)) for p in positions]
    cells = table.frame[config.data.id].iloc[np.asarray(positions, dtype=np.int64)]
    return [_id(v) for v in cells]


def bad_rows_of(
    dataset: MultimodalDataset, config: PlaitConfig, problems: list[RowProblem]
) -> BadRows:
    """The problems `prepare_inference` found in the table of `dataset`, with the id of
    each bad row (so a bad-rows list joins to the source table like the predictions)."""
    table = dataset.table
    report = BadRows(table.name, len(table), problems)
    positions = [row - 1 for row in report.rows]  # Table.row_number(p) == p + 1
    report.ids = dict(zip(report.rows, row_ids(table, config, positions), strict=True))
    return report


def _dataset(
    table: Table,
    rows: np.ndarray,
    config: PlaitConfig,
    processors: dict[str, Processor],
    labels: LabelSpace | None,
    train: bool,
    seed: int,
) -> MultimodalDataset:
    frame = table.frame.iloc[rows]
    encoded = labels.encode(frame[labels.columns]) if labels is not None else None
    ids = None
    if config.data.id:
        ids = [_id(v) for v in frame[config.data.id]]
    return MultimodalDataset(table, processors, rows, encoded, ids, train=train, seed=seed)


def _id(value: Any) -> str:
    """An id as written in the manifest (`0001` stays `0001`), so outputs join back."""
    return id_text(value)
