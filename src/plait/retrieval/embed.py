"""Embed a table with an aligned model and keep the vectors in a file.

Two file formats, picked by the extension of the path:

- ``.parquet``: one row per embedded item: ``id`` (string), ``embedding`` (a
  fixed-size list of float32, one width for every row), then the metadata columns.
- ``.npy``: the [N, D] float32 matrix as written by ``np.save``, plus a sidecar table
  ``<stem>.ids.parquet`` with the ``id`` column and the metadata columns, row i
  describing vector i (a sidecar ``<stem>.ids.csv`` is read too).

Every file is written atomically, so a crash never leaves half a file::

    path = embed_table(model, "photos.csv", "image", "photos.parquet")
    ids, vectors, metadata = read_embeddings(path)   # [N], [N, D], N rows
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from plait.data.bad_rows import OnError
from plait.errors import PlaitError
from plait.utils.io import atomic_write

if TYPE_CHECKING:
    from plait.alignment.predictor import AlignedPredictor

ID_COLUMN = "id"
EMBEDDING_COLUMN = "embedding"
FORMATS = (".parquet", ".npy")
RESERVED_COLUMNS = (ID_COLUMN, EMBEDDING_COLUMN, "rank", "score")


# ----------------------------------------------------------------------------- writing
def write_embeddings(
    path: str | Path,
    ids: Sequence[str],
    vectors: np.ndarray,
    metadata: pd.DataFrame | None = None,
) -> Path:
    """Write ids, [N, D] vectors and optional per-row metadata to `.parquet` or `.npy`.

    Raises:
        PlaitError: an unknown extension, rows that do not line up, or a metadata column
            named `id` or `embedding`.
    """
    path = Path(path)
    check_format(path)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise PlaitError(f"embeddings must be a [N, D] matrix, got shape {vectors.shape}")
    table = _id_table(ids, len(vectors), metadata)
    if path.suffix.lower() == ".npy":
        atomic_write(sidecar_path(path), lambda tmp: table.to_parquet(tmp, index=False))
        atomic_write(path, lambda tmp: _save_npy(tmp, vectors))
    else:
        atomic_write(path, lambda tmp: _write_parquet(tmp, table, vectors))
    return path


def sidecar_path(path: str | Path, suffix: str = ".parquet") -> Path:
    """`emb.npy` -> `emb.ids.parquet`: the table of ids (+ metadata) of an `.npy` file."""
    path = Path(path)
    return path.with_name(f"{path.stem}.ids{suffix}")


def _id_table(ids: Sequence[str], n: int, metadata: pd.DataFrame | None) -> pd.DataFrame:
    if len(ids) != n:
        raise PlaitError(f"{len(ids)} ids for {n} embeddings: give one id per row")
    table = pd.DataFrame({ID_COLUMN: [str(i) for i in ids]})
    if metadata is None:
        return table
    clash = {ID_COLUMN, EMBEDDING_COLUMN} & {str(c) for c in metadata.columns}
    if clash:
        raise PlaitError(
            f"metadata column(s) {sorted(clash)} clash with the embedding file's own columns"
        )
    if len(metadata) != n:
        raise PlaitError(f"metadata has {len(metadata)} rows for {n} embeddings")
    return pd.concat([table, metadata.reset_index(drop=True)], axis=1)


def _save_npy(tmp: Path, vectors: np.ndarray) -> None:
    with open(tmp, "wb") as handle:  # a file handle: np.save would add `.npy` to the name
        np.save(handle, vectors, allow_pickle=False)


def _write_parquet(tmp: Path, table: pd.DataFrame, vectors: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    dim = vectors.shape[1]
    flat = pa.array(vectors.reshape(-1), type=pa.float32())  # [N * D]
    column = pa.FixedSizeListArray.from_arrays(flat, dim)  # N lists of D floats
    arrow = arrow.add_column(1, EMBEDDING_COLUMN, column)
    pq.write_table(arrow, tmp)


# ----------------------------------------------------------------------------- reading
def read_embeddings(path: str | Path) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """(ids, [N, D] float32 vectors, metadata with one row per vector) from a file that
    `write_embeddings` wrote (or any Parquet file with `id` and `embedding` columns).

    Raises:
        PlaitError: a missing file or sidecar, an unreadable or malformed file.
    """
    path = Path(path)
    check_format(path)
    if not path.is_file():
        raise PlaitError(f"{path}: embeddings file not found")
    if path.suffix.lower() == ".npy":
        return _read_npy(path)
    return _read_parquet(path)


def _read_parquet(path: Path) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise PlaitError(f"{path}: cannot read as Parquet: {exc}") from None
    for column in (ID_COLUMN, EMBEDDING_COLUMN):
        if column not in arrow.column_names:
            raise PlaitError(
                f"{path}: no `{column}` column (an embeddings file has `{ID_COLUMN}` and "
                f"`{EMBEDDING_COLUMN}`; found {', '.join(arrow.column_names)})"
            )
    vectors = _matrix(arrow.column(EMBEDDING_COLUMN).combine_chunks(), path)
    ids = [str(i) for i in arrow.column(ID_COLUMN).to_pylist()]
    metadata = arrow.drop_columns([ID_COLUMN, EMBEDDING_COLUMN]).to_pandas()
    return ids, vectors, metadata


def _matrix(column: Any, path: Path) -> np.ndarray:
    """A list / fixed-size-list arrow column of N equal-length rows -> [N, D] float32."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type)):
        raise PlaitError(f"{path}: `{EMBEDDING_COLUMN}` is {column.type}, not a list of floats")
    if column.null_count:
        raise PlaitError(f"{path}: {column.null_count} row(s) have no `{EMBEDDING_COLUMN}`")
    if len(column) == 0:
        return np.zeros((0, getattr(column.type, "list_size", 0)), np.float32)
    lengths = np.asarray(pc.list_value_length(column))  # [N]
    if lengths.min() != lengths.max():
        raise PlaitError(
            f"{path}: embeddings have different widths ({lengths.min()} to {lengths.max()})"
        )
    flat = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return flat.reshape(len(column), int(lengths[0]))  # [N, D]


def _read_npy(path: Path) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PlaitError(f"{path}: cannot read as a NumPy .npy file: {exc}") from None
    if vectors.ndim != 2:
        raise PlaitError(f"{path}: expected a [N, D] matrix, found shape {vectors.shape}")
    table = _read_sidecar(path)
    if ID_COLUMN not in table.columns:
        raise PlaitError(f"{sidecar_path(path)}: no `{ID_COLUMN}` column")
    if len(table) != len(vectors):
        raise PlaitError(f"{path}: {len(vectors)} vectors but its ids table has {len(table)} rows")
    ids = [str(i) for i in table[ID_COLUMN]]
    return ids, vectors.astype(np.float32, copy=False), table.drop(columns=[ID_COLUMN])


def _read_sidecar(path: Path) -> pd.DataFrame:
    parquet, csv = sidecar_path(path), sidecar_path(path, ".csv")
    try:
        if parquet.is_file():
            return pd.read_parquet(parquet)
        if csv.is_file():
            return pd.read_csv(csv, dtype={ID_COLUMN: str}, keep_default_na=False)
    except Exception as exc:  # pandas / pyarrow raise many types for a bad file
        raise PlaitError(f"{path}: cannot read its ids table: {exc}") from None
    raise PlaitError(f"{path}: no ids table next to it (expected {parquet.name} or {csv.name})")


def check_format(path: Path) -> None:
    """Refuse a path that is neither `.parquet` nor `.npy` (before any embedding work)."""
    if path.suffix.lower() not in FORMATS:
        raise PlaitError(
            f"{path}: unknown embeddings format '{path.suffix}'; use {' or '.join(FORMATS)}"
        )


# ----------------------------------------------------------------------------- embedding
def embed_rows(
    predictor: AlignedPredictor,
    data: Any,
    modality: str,
    *,
    batch_size: int = 64,
    progress: bool = False,
    metadata_columns: Sequence[str] | None = None,
    on_error: OnError = "raise",
) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """Embed one modality of every row of `data` that has it: (ids, [N, D], metadata).

    The metadata (see `row_metadata`) lets search hits show what they point at.
    `on_error`: `raise` (the default here, for callers such as `plait index build`
    that have nowhere to list skipped rows) refuses a table with an unreadable file;
    `skip` leaves such rows out (a vector cannot be empty) and keeps them in
    `predictor.last_bad_rows` for the caller to list.
    """
    from plait.data.manifest import read_table

    table = read_table(data)
    ids, vectors, rows = predictor.embed_rows(
        table, modality, batch_size=batch_size, progress=progress, on_error=on_error
    )
    metadata = row_metadata(predictor, table, modality, rows, metadata_columns)
    return ids, vectors, metadata


def embed_table(
    predictor: AlignedPredictor,
    data: Any,
    modality: str,
    out: str | Path,
    *,
    batch_size: int = 64,
    progress: bool = False,
    metadata_columns: Sequence[str] | None = None,
    on_error: OnError = "skip",
) -> Path:
    """Embed one modality of a table and write the file `out` (.parquet or .npy).

    With `on_error="skip"` (the default, as `plait embed`) rows whose file cannot be
    read are left out of `out` and listed in `<out stem>.bad_rows.csv` beside it (a stale
    list from an earlier run is removed); `raise` refuses the table.
    """
    from plait.data.bad_rows import bad_rows_path, write_bad_rows

    check_format(Path(out))
    ids, vectors, metadata = embed_rows(
        predictor,
        data,
        modality,
        batch_size=batch_size,
        progress=progress,
        metadata_columns=metadata_columns,
        on_error=on_error,
    )
    path = write_embeddings(out, ids, vectors, metadata)
    write_bad_rows(predictor.last_bad_rows, bad_rows_path(path))
    return path


def row_metadata(
    predictor: AlignedPredictor,
    data: Any,
    modality: str,
    rows: Sequence[int] | np.ndarray,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The source table's metadata for the 0-based table positions `rows`, one row each.

    By default: the embedded modality's column (file paths and array cells made absolute,
    so the hits of an index still open from another folder) and the label column(s) when
    the table has them. `columns` names the columns instead (the modality's column is
    still made absolute when it is listed).
    """
    from plait.data.arrays import is_array_cell
    from plait.data.manifest import read_table

    table = read_table(data)
    config = predictor.config
    name = predictor.modality(modality)
    column = config.modalities[name].column
    if columns is None:
        wanted = [column, *(c for c in config.label_columns if c != column)]
        wanted = [c for c in wanted if c in table.frame.columns]
    else:
        wanted = list(columns)
        missing = [c for c in wanted if c not in table.frame.columns]
        if missing:
            raise PlaitError(f"{table.name}: no column(s) {missing} for the metadata")
    if columns is None:  # names an embeddings file or a search hit uses for itself
        wanted = [c for c in wanted if c not in (*RESERVED_COLUMNS, config.data.id)]
    frame = table.frame[wanted].iloc[np.asarray(rows, dtype=np.int64)].reset_index(drop=True)
    if column in frame.columns and config.modalities[name].kind != "text":
        frame[column] = [
            _absolute(v, table.base_dir, is_array_cell(v)) for v in frame[column].tolist()
        ]
    return frame


def _absolute(value: Any, base_dir: Path, array_cell: bool) -> Any:
    """A path cell (or `file.npy#row` cell) resolved against the manifest's folder."""
    if not isinstance(value, str) or not value.strip():
        return value
    if array_cell:
        path, _, row = value.strip().rpartition("#")
        return f"{_resolve(path, base_dir)}#{row}"
    return str(_resolve(value, base_dir))


def _resolve(value: str, base_dir: Path) -> Path:
    from plait.data.processor import resolve_path

    return resolve_path(value, base_dir).resolve()
