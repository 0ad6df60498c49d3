"""Reading a CSV/TSV manifest as text: its encoding, its delimiter, and parse errors told
in Plait's row numbers.

Every cell stays the text it is in the file; only an empty or blank cell is missing (NaN).
pandas' own NA words (`NA`, `None`, `null`, `N/A`, ...) would turn a class or a caption of
that name into a missing value, and its number parsing would turn the id `0001` into `1`.
"""

from __future__ import annotations

import codecs
import csv
import logging
from pathlib import Path

import pandas as pd

from plait.errors import DataError

ROW_NUMBERING = "row numbers count data rows from 1, the header line excluded"

log = logging.getLogger(__name__)

#: Delimiters a text manifest may use, with the name messages give them.
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}

#: Tried in order when a file is not UTF-8: Windows' Western code page (Excel's default
#: CSV encoding there), then Latin-1, which decodes any byte.
_FALLBACK_ENCODINGS = ("cp1252", "latin-1")
_BLOCK = 1 << 20


def read_delimited(path: Path, default: str) -> pd.DataFrame:
    """A CSV/TSV file -> a frame of strings, blank cells missing (NaN), nothing else."""
    encoding = _encoding(path)
    with path.open(encoding=encoding, newline="") as file:
        header = file.readline()
    if not header.strip():
        raise pd.errors.EmptyDataError
    sep = _delimiter(header, default)
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            encoding=encoding,
            dtype=str,
            keep_default_na=False,  # "NA", "None", "null" are values; blanks handled below
        )
    except pd.errors.ParserError as exc:
        raise DataError(_parse_error(path, encoding, sep, str(exc))) from None
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas turns the first column into an index when the first data row has one
        # field more than the header: every value would shift one column to the left
        raise DataError(_parse_error(path, encoding, sep, "a row has too many fields"))
    for column in frame.columns:  # an empty or blank cell is the one kind of missing
        frame[column] = frame[column].mask(frame[column].str.strip() == "")
    return frame


def _delimiter(header: str, default: str) -> str:
    """The delimiter that splits the header line into the most columns.

    Why the header alone: its cells are column names the config refers to, so they hold
    no delimiter, while a caption may hold any number of commas or semicolons. Python's
    `csv.Sniffer` (and pandas' `sep=None`, which calls it on the first line) guesses from
    character frequencies instead, may pick any character, and breaks ties towards a
    comma. Ties here go to the extension's own delimiter (comma for .csv, tab for .tsv),
    so a one-column file reads as before.
    """
    counts = {d: len(next(csv.reader([header], delimiter=d), [])) for d in DELIMITERS}
    best = max(counts.values())
    if counts[default] == best:
        return default
    return max(counts, key=lambda d: counts[d])


def _encoding(path: Path) -> str:
    """The file's text encoding: from its byte-order mark, else UTF-8 when every byte
    decodes as UTF-8, else the first of `_FALLBACK_ENCODINGS` that does (with a warning
    naming the first non-UTF-8 byte and its row). Read in blocks: a large file costs no
    extra memory.

    Raises:
        DataError: the file holds NUL bytes (a binary file, not text).
    """
    with path.open("rb") as file:
        start = file.read(4)
    if start.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    bad = _first_undecodable(path, "utf-8")
    if bad is None:
        return "utf-8"
    for fallback in _FALLBACK_ENCODINGS:
        if _first_undecodable(path, fallback) is None:
            break
    where = _row_of_byte(path, fallback, bad)
    log.warning(
        "%s: not valid UTF-8 (byte 0x%02X %s); read as %s. Save the file as UTF-8 to be sure "
        "every character is read as meant.",
        path,
        _byte_at(path, bad),
        where,
        fallback,
    )
    return fallback


def _first_undecodable(path: Path, encoding: str) -> int | None:
    """Offset of the first byte `encoding` cannot decode, or None when all of it decodes."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as file:
        for block in iter(lambda: file.read(_BLOCK), b""):
            if b"\x00" in block:
                raise DataError(
                    f"{path}: holds NUL bytes, so it is not CSV/TSV text: a binary file (a "
                    "Parquet file needs the .parquet extension) or UTF-16 text without a "
                    "byte-order mark (save it as UTF-8)"
                )
            pending = len(decoder.getstate()[0])  # bytes of a character split by the block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return offset - pending + exc.start
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return offset - len(decoder.getstate()[0])
    return None


def _byte_at(path: Path, offset: int) -> int:
    with path.open("rb") as file:
        file.seek(max(offset, 0))
        return (file.read(1) or b"\x00")[0]


def _row_of_byte(path: Path, encoding: str, offset: int) -> str:
    """'in row N' (Plait's numbering) or 'in the header' for the byte at `offset`."""
    with path.open("rb") as file:
        before = file.read(max(offset, 0)).decode(encoding, errors="replace")
    records = [r for r in csv.reader(before.splitlines(keepends=True)) if r]
    row = len(records) if before.endswith(("\n", "\r")) or not before else len(records) - 1
    return f"in row {row}" if row >= 1 else "in the header"


def _parse_error(path: Path, encoding: str, sep: str, detail: str) -> str:
    """A parser failure -> the data row at fault, in Plait's numbering, and the delimiter
    the file seems to use (pandas counts file lines, which differ once a quoted value
    spans lines)."""
    shown = "\\t" if sep == "\t" else sep
    seems = (
        f"the file seems to use the {DELIMITERS[sep]} ('{shown}') as its delimiter "
        "(judged from its header line)"
    )
    for strict in (False, True):  # first a row with too many fields, then bad quoting
        with path.open(encoding=encoding, newline="") as file:
            reader = csv.reader(file, delimiter=sep, strict=strict)
            header = next(reader, [])
            row = 0
            try:
                for record in reader:
                    if not record:  # a blank line is no row (pandas skips it too)
                        continue
                    row += 1
                    if len(record) > len(header):
                        return (
                            f"{path}: row {row} has {len(record)} fields but the header has "
                            f"{len(header)}; {seems}, so a value holding '{shown}' must be in "
                            f"double quotes ({ROW_NUMBERING})"
                        )
            except csv.Error as exc:
                return (
                    f"{path}: row {row + 1}: {exc} (check its double quotes); {seems} "
                    f"({ROW_NUMBERING})"
                )
    detail = detail.split("C error: ")[-1].strip()
    return f"{path}: cannot read as delimited text; {seems}: {detail}"
