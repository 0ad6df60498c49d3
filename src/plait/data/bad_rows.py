"""The bad rows of one inference run: the `on_error` policy, the refusal, the list.

Inference (predict, evaluate, embed, zeroshot) chooses its own policy: `raise` refuses
the table, naming the first bad row and how many there are; `skip` runs the model on
the other rows and keeps every problem in a `BadRows`, which the caller lists (a
printed summary and a bad-rows CSV beside the output). The training config's
`data.on_error` is never consulted: it says how to train, and a model trained with the
default `raise` must still be able to predict a table with one unreadable file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import numpy as np
import pandas as pd

from plait.data.manifest import ROW_NUMBERING
from plait.errors import DataError, PlaitError, RowProblem

OnError = Literal["raise", "skip"]
ON_ERROR_CHOICES: tuple[OnError, ...] = ("raise", "skip")
BAD_ROWS_COLUMNS = ("row", "id", "column", "file", "reason")
SHOWN = 5  # problems a printed summary shows before "... and N more"


def check_on_error(value: str) -> OnError:
    """`value` as an `OnError`, or a clear error naming the choices."""
    if value not in ON_ERROR_CHOICES:
        raise PlaitError(f"on_error must be 'raise' or 'skip', got {value!r}")
    return cast(OnError, value)


@dataclass
class BadRows:
    """Every problem found in one table, with the id of each bad row.

    Attributes:
        table: how messages name the table (its path, or `<DataFrame>`).
        total: rows in the table.
        problems: one per bad cell, sorted by (row, column).
        ids: 1-based row number -> the row's id (as predictions write it).
    """

    table: str
    total: int
    problems: list[RowProblem] = field(default_factory=list)
    ids: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.problems = sorted(self.problems, key=lambda p: (p.row, p.column or ""))

    def __bool__(self) -> bool:
        return bool(self.problems)

    @property
    def rows(self) -> list[int]:
        """1-based numbers of the bad rows, ascending, each once."""
        return sorted({p.row for p in self.problems})

    def reasons(self) -> dict[int, str]:
        """Row number -> why it was skipped (every bad column of the row, joined)."""
        found: dict[int, list[str]] = {}
        for p in self.problems:
            where = f"column '{p.column}': " if p.column else ""
            found.setdefault(p.row, []).append(f"{where}{p.reason}")
        return {row: "; ".join(parts) for row, parts in found.items()}

    def frame(self) -> pd.DataFrame:
        """One line per problem (row, id, column, file, reason), sorted by row."""
        return pd.DataFrame(
            [
                {
                    "row": p.row,
                    "id": self.ids.get(p.row, str(p.row)),
                    "column": p.column or "",
                    "file": p.file,
                    "reason": p.reason,
                }
                for p in self.problems
            ],
            columns=list(BAD_ROWS_COLUMNS),
        )

    def refusal(self) -> DataError:
        """The error of `on_error="raise"`: how many rows, the first one, how to go on."""
        first = self.problems[0]
        column = f", column '{first.column}'" if first.column else ""
        return DataError(
            f"{self.table}: {len(self.rows)} of {self.total} row(s) cannot be used "
            f"({ROW_NUMBERING}); the first is row {first.row}{column}: {first.reason}. "
            "Fix or drop these rows, or let predict, evaluate, embed or zeroshot skip and "
            'list them: --on-error skip (Python: on_error="skip")',
            self.problems,
        )

    def summary(self, listed_in: Path | None = None, shown: int = SHOWN) -> str:
        """A few lines for a terminal: the count, the first `shown` problems, the file."""
        lines = [
            f"skipped {len(self.rows)} of {self.total} row(s) of {self.table} that cannot be "
            f"used ({ROW_NUMBERING}):"
        ]
        lines += [f"  - {p}" for p in self.problems[:shown]]
        more = len(self.problems) - shown
        if more > 0:
            lines.append(f"  ... and {more} more problem(s)")
        if listed_in is not None:
            lines.append(f"every bad row is listed in {listed_in}")
        return "\n".join(lines)


def with_bad_rows(
    frame: pd.DataFrame, good: Sequence[int] | np.ndarray, report: BadRows | None
) -> pd.DataFrame:
    """One output row per table row, in table order: `frame` holds the outputs of the
    good rows (0-based table positions `good`, in order); each bad row of `report` gets
    its id, empty outputs and an `error` saying why. Unchanged when no row was bad."""
    if not report:
        return frame
    if len(frame) != len(good):
        raise ValueError(f"{len(frame)} output rows for {len(good)} good rows")
    full = frame.set_axis(np.asarray(good, dtype=np.int64)).reindex(range(report.total))
    reasons = report.reasons()
    bad = [row - 1 for row in report.rows]  # Table.row_number(p) == p + 1
    if "id" in full.columns:
        ids = full["id"].astype(object)
        ids.loc[bad] = [report.ids.get(row, str(row)) for row in report.rows]
        full["id"] = ids.astype(frame["id"].dtype)
    error = pd.Series(None, index=full.index, dtype=object)
    error.loc[bad] = [reasons[row] for row in report.rows]
    full["error"] = error
    return full.reset_index(drop=True)


def bad_rows_path(output: str | Path) -> Path:
    """Where the bad rows of `output` are listed: `predictions.csv` ->
    `predictions.bad_rows.csv`, `emb.parquet` (or `emb.npy`) -> `emb.bad_rows.csv`."""
    path = Path(output)
    return path.with_name(f"{path.stem}.bad_rows.csv")


def write_bad_rows(report: BadRows | None, path: str | Path) -> Path | None:
    """Write the bad-rows CSV (atomically), or remove a stale one when no row was bad,
    so the file beside an output always describes that output. Returns the path written."""
    from plait.utils.io import atomic_write

    path = Path(path)
    if not report:
        if path.is_file():
            path.unlink()
        return None
    frame = report.frame()
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    return path
