"""Index one modality of a table with an aligned model, then search it from any tower.

An index folder remembers the model that built it (`info["model"]`, an absolute path),
so a query only names the index: a text query on an image index goes through the text
tower, an image query through the image tower, and both land in the same space::

    build_index("runs/clip/model", "photos.csv", "image", "photos-index")
    hits = search("photos-index", text="a dog on a beach", k=5)  # rank, id, score, image, ...
    contact_sheet(hits, "dog.html", "a dog on a beach", "image")

Each call is preprocess (load the index and model, check and embed the query) ->
search -> postprocess (a DataFrame of hits, or an HTML page of them).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from plait.errors import PlaitError
from plait.evaluation.html import render
from plait.retrieval.embed import embed_rows
from plait.utils.io import atomic_write_text

if TYPE_CHECKING:
    from plait.alignment.predictor import AlignedPredictor
    from plait.retrieval.index import EmbeddingIndex, IndexKind

QUERY_KINDS = ("text", "image", "audio")
_OWN_COLUMNS = ("id", "embedding", "rank", "score")  # names a hit uses for itself
THUMBNAIL_PIXELS = 160


# ----------------------------------------------------------------------------- building
def build_index(
    model: AlignedPredictor | str | Path,
    data: Any,
    modality: str,
    out: str | Path,
    *,
    kind: str = "auto",
    batch_size: int = 64,
    progress: bool = False,
    metadata_columns: Sequence[str] | None = None,
) -> EmbeddingIndex:
    """Embed `modality` of every row of `data` and save a searchable index in `out`.

    Args:
        model: an aligned model folder (recorded in the index, so searches need no
            `model=`) or a loaded `AlignedPredictor` (then searches must pass `model=`).
        modality: the modality to index, by name or kind (`image`).
        kind: `auto`, `exact`, `hnsw` or `ivfpq` (see `EmbeddingIndex.build`).
        metadata_columns: source columns kept with each item, which search hits can show
            (`show=`). Default: every column of the table that Parquet can store (the
            modality's column with paths made absolute); hits show the modality's column
            and the label column(s) unless asked for others.
    """
    from plait.data.manifest import read_table
    from plait.retrieval.index import KINDS, EmbeddingIndex

    if kind != "auto" and kind not in KINDS:  # before minutes of embedding, not after
        raise PlaitError(f"unknown index kind {kind!r}; choose one of auto, {', '.join(KINDS)}")
    predictor = load_aligned(model)
    name = predictor.modality(modality)
    table = read_table(data)
    shown = _default_columns(predictor, table, name)
    kept = (
        list(metadata_columns)
        if metadata_columns is not None
        else _kept_columns(predictor, table, shown)
    )
    ids, vectors, metadata = embed_rows(
        predictor,
        table,
        name,
        batch_size=batch_size,
        progress=progress,
        metadata_columns=kept,
    )
    if not ids:
        raise PlaitError(f"{table.name}: no rows have a `{name}` value to index")
    spec = predictor.config.modalities[name]
    info = {
        "model": str(Path(model).resolve()) if isinstance(model, str | Path) else None,
        "modality": name,
        "kind": spec.kind,
        "column": spec.column,
        "base_dir": str(table.base_dir),
        "shown": [c for c in shown if c in kept] if metadata_columns is None else kept,
    }
    index = EmbeddingIndex.build(
        vectors,
        ids,
        metadata,
        kind=cast("IndexKind", kind),  # checked by `build`
        normalize=True,
        info=info,
        progress=progress,
    )
    index.save(out)
    return index


def add_to_index(
    index: str | Path,
    data: Any,
    *,
    model: AlignedPredictor | str | Path | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> EmbeddingIndex:
    """Embed the rows of `data` with the index's model, append them and save the index
    folder again (atomically). Returns the grown index."""
    from plait.data.manifest import read_table

    folder = Path(index)
    loaded = load_index(folder)
    predictor = _index_model(loaded, model)
    name = str(loaded.info["modality"])
    table = read_table(data)
    kept = [c for c in loaded.metadata.columns if c in table.frame.columns]
    ids, vectors, metadata = embed_rows(
        predictor, table, name, batch_size=batch_size, progress=progress, metadata_columns=kept
    )
    if not ids:
        raise PlaitError(f"{table.name}: no rows have a `{name}` value to add")
    taken = sorted(set(ids) & set(loaded.ids))
    if taken:
        raise PlaitError(
            f"{table.name}: {len(taken)} id(s) are already in the index (first: {taken[0]!r}); "
            "add only new rows (ids come from the model's `data.id` column, else row numbers)"
        )
    loaded.add(vectors, ids, metadata)
    loaded.save(folder)
    return loaded


def _default_columns(predictor: AlignedPredictor, table: Any, name: str) -> list[str]:
    """What a hit shows unless asked otherwise: the indexed column and the label(s)."""
    config = predictor.config
    column = config.modalities[name].column
    wanted = [column, *(c for c in config.label_columns if c != column)]
    return [c for c in wanted if c in table.frame.columns and c not in _OWN_COLUMNS]


def _kept_columns(predictor: AlignedPredictor, table: Any, shown: list[str]) -> list[str]:
    """Every column an index keeps by default: the shown ones first, then each other
    column Parquet can store (a column of mixed value types is left out, not fatal)."""
    import pyarrow as pa

    own = {*_OWN_COLUMNS, predictor.config.data.id}
    kept = list(shown)
    for column in table.frame.columns:
        if not isinstance(column, str) or column in own or column in kept:
            continue
        try:
            pa.array(table.frame[column], from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError):
            continue
        kept.append(column)
    return kept


def load_index(folder: str | Path) -> EmbeddingIndex:
    """An index folder saved by `build_index`, with a clear error when there is none."""
    from plait.retrieval.index import EmbeddingIndex

    folder = Path(folder)
    if not folder.is_dir():
        raise PlaitError(f"{folder}: no index here (build one with `plait index build`)")
    return EmbeddingIndex.load(folder)


def load_aligned(model: AlignedPredictor | str | Path) -> AlignedPredictor:
    """An `AlignedPredictor` from itself or a saved model folder."""
    from plait.alignment.predictor import AlignedPredictor
    from plait.predictor import load

    if isinstance(model, AlignedPredictor):
        return model
    if not Path(model).is_dir():
        raise PlaitError(f"{model}: model folder not found")
    loaded = load(model)
    if not isinstance(loaded, AlignedPredictor):
        raise PlaitError(
            f"{model} is a supervised model, not an aligned one: embedding, search and "
            "zero-shot need a model trained with an `alignment:` block"
        )
    return loaded


def _index_model(
    index: EmbeddingIndex, model: AlignedPredictor | str | Path | None
) -> AlignedPredictor:
    """The model that embeds queries: `model` when given, else the one the index names."""
    if model is None:
        recorded = index.info.get("model")
        if not recorded:
            raise PlaitError("this index records no model folder: pass the model (--model)")
        if not Path(recorded).is_dir():
            raise PlaitError(
                f"this index's model {recorded} is gone: pass the model folder (--model)"
            )
        model = recorded
    predictor = load_aligned(model)
    if predictor.dim != index.dim:
        raise PlaitError(
            f"the model embeds into {predictor.dim} dimensions but the index holds "
            f"{index.dim}-dimensional vectors: use the model that built the index"
        )
    return predictor


# ----------------------------------------------------------------------------- searching
def search(
    index: EmbeddingIndex | str | Path,
    *,
    text: str | None = None,
    image: Any = None,
    audio: Any = None,
    k: int = 10,
    model: AlignedPredictor | str | Path | None = None,
    show: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The `k` nearest items to one query: a DataFrame with rank, id, score (cosine
    similarity, highest first) and the items' metadata columns.

    Give exactly one of `text`, `image` or `audio`, in any form the training data takes:
    a file path, a `file.npy#row` array cell, or an in-memory array. The query is
    embedded by the index's model (or `model`) with its tower of that kind.

    `show` picks the metadata columns of the hits (any the index keeps, see
    `build_index`); default: the indexed column and the label column(s).

    Raises:
        PlaitError: no query or several, an empty text, a missing file, a model with no
            tower of the query's kind, or a `show` column the index does not keep.
    """
    queries = {
        kind: value
        for kind, value in zip(QUERY_KINDS, (text, image, audio), strict=True)
        if value is not None
    }
    if len(queries) != 1:
        given = ", ".join(queries) or "none"
        raise PlaitError(f"give exactly one query: text, image or audio (got {given})")
    ((kind, value),) = queries.items()
    if k < 1:
        raise PlaitError(f"k must be at least 1, got {k}")
    loaded = index if not isinstance(index, str | Path) else load_index(index)
    columns = shown_columns(loaded, show)
    predictor = _index_model(loaded, model)
    vector = embed_query(predictor, kind, value)  # [1, D]
    hits = loaded.search(vector, k)[0]
    frame = hits.to_frame()[["rank", "id", "score", *columns]]
    frame.attrs.update(
        query_kind=kind,
        query=_query_label(value),
        modality=loaded.info.get("modality"),
        kind=loaded.info.get("kind"),
        column=loaded.info.get("column"),
    )
    return frame


def shown_columns(index: EmbeddingIndex, show: Sequence[str] | None) -> list[str]:
    """The metadata columns a hit shows: `show`, checked against what the index keeps,
    else the index's default (an index built before it recorded one shows them all)."""
    stored = [str(c) for c in index.metadata.columns]
    if show is None:
        recorded = index.info.get("shown")
        return [c for c in recorded if c in stored] if isinstance(recorded, list) else stored
    missing = [c for c in show if c not in stored]
    if missing:
        raise PlaitError(
            f"this index keeps no column(s) {missing} to show; it keeps "
            f"{', '.join(stored) or 'none'} (`plait index build` keeps every column of "
            "the table it indexes: rebuild the index from a table that has them)"
        )
    return list(dict.fromkeys(show))


def embed_query(predictor: AlignedPredictor, kind: str, value: Any) -> Any:
    """One query of `kind` (a text; an image or audio file, `file.npy#row` array cell or
    array) -> [1, D] unit vector."""
    import numpy as np

    from plait.data.arrays import is_array_cell

    towers = {predictor.config.modalities[n].kind: n for n in predictor.pair}
    if kind not in towers:
        raise PlaitError(
            f"this index's model aligns {' and '.join(towers)}; it cannot embed {kind} queries"
        )
    if kind == "text":
        if not isinstance(value, str) or not value.strip():
            raise PlaitError("empty text query: give some words to search for")
    elif isinstance(value, np.ndarray):
        pass
    elif is_array_cell(str(value)):
        value = str(value)  # a `file.npy#row` cell, even when it came as a Path
    elif not Path(value).expanduser().is_file():
        raise PlaitError(f"{kind} query file not found: {value}")
    return predictor.embed_values(towers[kind], [value])


def _query_label(value: Any) -> str:
    """How a query is named in titles: its text or path, or an array's shape."""
    shape = getattr(value, "shape", None)
    return f"array {tuple(shape)}" if shape is not None else str(value)


# ----------------------------------------------------------------------------- contact sheet
def contact_sheet(
    hits: pd.DataFrame,
    out_html: str | Path,
    query_label: str,
    image_column: str,
    show: Sequence[str] | None = None,
) -> Path:
    """A self-contained HTML page of image hits: a thumbnail (embedded as base64 PNG),
    rank, score, id and the `show` columns (default: every other column of `hits`) per
    hit, written atomically. Returns the page's path.

    `image_column` holds absolute image paths or `file.npy#row` cells (an index's
    metadata keeps them absolute). A hit whose image cannot be read shows a note instead.
    """
    if image_column not in hits.columns:
        raise PlaitError(
            f"the hits have no `{image_column}` column to draw (columns: "
            f"{', '.join(map(str, hits.columns))}); a contact sheet needs an image index"
        )
    if show is None:
        extra = [c for c in hits.columns if c not in ("rank", "id", "score", image_column)]
    else:
        own = ("rank", "id", "score", image_column)  # the card shows these (the picture)
        extra = [c for c in show if c in hits.columns and c not in own]
    cards = [_card(row, image_column, extra) for row in hits.to_dict("records")]
    page = render("contact_sheet.html", title=f"Plait search: {query_label}", cards=cards)
    path = Path(out_html)
    atomic_write_text(path, page)
    return path


def _card(row: dict[str, Any], image_column: str, extra: list[str]) -> dict[str, Any]:
    """What `templates/contact_sheet.html` draws for one hit (it escapes every value)."""
    encoded, problem = _thumbnail(row.get(image_column))
    return {
        "src": f"data:image/png;base64,{encoded}" if encoded else None,
        "problem": problem,
        "rank": row.get("rank"),
        "score": f"{float(row['score']):.4f}",
        "id": row.get("id"),
        "extra": [(c, row.get(c)) for c in extra],
    }


def _thumbnail(value: Any) -> tuple[str | None, str]:
    """(base64 PNG of a <= 160 px thumbnail, "") or (None, why it could not be drawn)."""
    import numpy as np

    from plait.data.arrays import is_array_cell, load_array_cell
    from plait.data.image import array_to_image, load_image

    try:
        if is_array_cell(value):
            array = load_array_cell(str(value), Path("/"))
            if array.dtype != np.uint8:  # floats of any range: stretch to 0-255 to show
                low, high = float(array.min()), float(array.max())
                array = (array - low) / (high - low or 1.0)
            image = array_to_image(array, 3)
        elif isinstance(value, str) and value.strip():
            image = load_image(Path(value), 10**8, 3)
        else:
            return None, "no image"
    except (OSError, ValueError) as exc:
        return None, f"cannot read: {exc}"
    image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii"), ""
