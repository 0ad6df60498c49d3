"""Reading a manifest (one row per sample) and checking its columns before any work starts.

A manifest is a CSV, TSV, Parquet or JSON-lines file, or an in-memory DataFrame. File paths
inside it are relative to the manifest's own folder (`Table.base_dir`), so a data folder can
be moved as a whole.

CSV and TSV files are read as text (see `plait.data.delimited`): a cell is missing only
when it is empty or blank, so a class named `None`, `NA` or `null` and a caption `NA` are
values, and an id `0001` stays `0001`. Parquet, JSON lines and DataFrames keep their own
types.

Row numbers: every error Plait reports counts *data rows from 1*, the header excluded, so
"row 17" is the 17th record of the file whatever its format. `Table.row_number` is the one
place that turns a 0-based position into that number.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from plait.data.delimited import ROW_NUMBERING as ROW_NUMBERING  # re-exported
from plait.data.delimited import read_delimited
from plait.errors import DataError

if TYPE_CHECKING:
    from plait.config import PlaitConfig

log = logging.getLogger(__name__)


_READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


@dataclass
class Table:
    """A manifest in memory.

    Attributes:
        frame: the rows, with a 0-based RangeIndex (positions are what Plait passes around).
        base_dir: folder that relative file paths in the table are resolved against.
        name: how errors name this table (the file path, or `<DataFrame>`).
    """

    frame: pd.DataFrame
    base_dir: Path
    name: str

    def __len__(self) -> int:
        return len(self.frame)

    @staticmethod
    def row_number(position: int) -> int:
        """0-based position -> the 1-based data-row number a user sees in the file."""
        return int(position) + 1


def read_table(source: str | Path | pd.DataFrame | Table) -> Table:
    """Read a manifest by its extension (.csv, .tsv, .parquet, .jsonl/.ndjson) or wrap a DataFrame.

    Raises:
        DataError: unknown extension, missing or unreadable file, a binary or badly
            delimited text file, or a table with no rows.
    """
    if isinstance(source, Table):
        return source
    if isinstance(source, pd.DataFrame):
        if len(source) == 0:
            raise DataError("the DataFrame given as a manifest has no rows")
        return Table(source.reset_index(drop=True), Path.cwd(), "<DataFrame>")

    path = Path(source).expanduser()
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(_READERS))
        raise DataError(f"{path}: unknown manifest format '{path.suffix}'; use one of {known}")
    if not path.is_file():
        raise DataError(f"{path}: manifest file not found")
    try:
        frame = _read(path, kind)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the manifest is empty (no header, no rows)") from None
    except Exception as exc:  # pandas/pyarrow raise many types for a bad file
        raise DataError(f"{path}: cannot read as {kind.upper()}: {exc}") from None
    if len(frame) == 0:
        raise DataError(f"{path}: the manifest has a header but no data rows")
    return Table(frame.reset_index(drop=True), path.resolve().parent, str(path))


def _read(path: Path, kind: str) -> pd.DataFrame:
    if kind in ("csv", "tsv"):
        return read_delimited(path, default="," if kind == "csv" else "\t")
    if kind == "parquet":
        return pd.read_parquet(path)
    # dtype=False: keep JSON's own types (a "3" label stays a string, as written)
    return pd.read_json(path, lines=True, dtype=False, convert_dates=False)


def id_text(value: Any) -> str:
    """An id cell as written: text verbatim (`0001` stays `0001`), integers without a
    trailing `.0` (Parquet floats), a missing cell as an empty string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else str(value)
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


def required_columns(config: PlaitConfig, require_labels: bool = True) -> dict[str, str]:
    """Every column the config names -> what it is for (used in error messages)."""
    needed: dict[str, str] = {}
    for name, modality in config.modalities.items():
        needed[modality.column] = f"modality '{name}'"
    if require_labels:
        for column in config.label_columns:
            needed[column] = "label"
    if config.data.id:
        needed[config.data.id] = "data.id"
    if config.data.group:
        needed[config.data.group] = "data.group"
    return needed


def check_columns(table: Table, config: PlaitConfig, require_labels: bool = True) -> None:
    """Fail early, naming the file, when a column the config uses is not in the table.

    Each missing column gets the closest existing name as a suggestion (a typo is the
    usual cause), and the message lists the columns the file does have.
    """
    present = [str(c) for c in table.frame.columns]
    lines = []
    for column, role in required_columns(config, require_labels).items():
        if column in table.frame.columns:
            continue
        close = difflib.get_close_matches(column, present, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        lines.append(f"  - column '{column}' ({role}) not found{hint}")
    if lines:
        raise DataError(
            f"{table.name}: {len(lines)} column(s) named in the config are missing\n"
            + "\n".join(lines)
            + f"\n  columns in this file: {', '.join(present)}"
        )
    if config.data.id:
        warn_duplicate_ids(table, config.data.id)


def duplicate_ids(table: Table, column: str) -> dict[str, list[int]]:
    """Each id that occurs more than once -> its row numbers (missing ids ignored)."""
    rows: dict[str, list[int]] = defaultdict(list)
    for position, value in enumerate(table.frame[column].tolist()):
        text = id_text(value)
        if text.strip():
            rows[text].append(Table.row_number(position))
    return {key: found for key, found in rows.items() if len(found) > 1}


def warn_duplicate_ids(table: Table, column: str, shown: int = 10) -> None:
    """Name every duplicated id and its rows, as a warning.

    A warning, not an error: each row is still a valid sample, and every output keeps
    one row per input row in input order, so nothing is lost; but predictions joined back
    to the source by id alone would pair the wrong rows, so the user must hear of it.
    """
    duplicates = duplicate_ids(table, column)
    if not duplicates:
        return
    items = list(duplicates.items())
    listed = ", ".join(
        f"'{key}' (rows {', '.join(map(str, rows[:shown]))}{' ...' if len(rows) > shown else ''})"
        for key, rows in items[:shown]
    )
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    log.warning(
        "%s: %d duplicated id(s) in column '%s': %s%s. Outputs keep one row per input row, "
        "in order, but joining them back by id alone would pair the wrong rows.",
        table.name,
        len(items),
        column,
        listed,
        more,
    )
