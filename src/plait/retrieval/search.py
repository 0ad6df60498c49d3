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
        metadata_columns: source columns kept with each item (default: the modality's
            column, paths made absolute, and the label column when present).
    """
    from plait.data.manifest import read_table
    from plait.retrieval.index import KINDS, EmbeddingIndex

    if kind != "auto" and kind not in KINDS:  # before minutes of embedding, not after
        raise PlaitError(f"unknown index kind {kind!r}; choose one of auto, {', '.join(KINDS)}")
    predictor = load_aligned(model)
    name = predictor.modality(modality)
    table = read_table(data)
    ids, vectors, metadata = embed_rows(
        predictor,
        table,
        name,
        batch_size=batch_size,
        progress=progress,
        metadata_columns=metadata_columns,
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
    ids, vectors, metadata = embed_rows(
        predictor, table, name, batch_size=batch_size, progress=progress
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
    image: str | Path | None = None,
    audio: str | Path | None = None,
    k: int = 10,
    model: AlignedPredictor | str | Path | None = None,
) -> pd.DataFrame:
    """The `k` nearest items to one query: a DataFrame with rank, id, score (cosine
    similarity, highest first) and the items' metadata columns.

    Give exactly one of `text`, `image` (a file path) or `audio` (a file path). The query
    is embedded by the index's model (or `model`) with its tower of that kind.

    Raises:
        PlaitError: no query or several, an empty text, a missing file, or a model with no
            tower of the query's kind.
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
    predictor = _index_model(loaded, model)
    vector = embed_query(predictor, kind, value)  # [1, D]
    hits = loaded.search(vector, k)[0]
    frame = hits.to_frame()
    frame.attrs.update(
        query_kind=kind,
        query=str(value),
        modality=loaded.info.get("modality"),
        kind=loaded.info.get("kind"),
        column=loaded.info.get("column"),
    )
    return frame


def embed_query(predictor: AlignedPredictor, kind: str, value: Any) -> Any:
    """One query of `kind` (text, or an image / audio file) -> [1, D] unit vector."""
    from plait.data.arrays import is_array_cell

    towers = {predictor.config.modalities[n].kind: n for n in predictor.pair}
    if kind not in towers:
        raise PlaitError(
            f"this index's model aligns {' and '.join(towers)}; it cannot embed {kind} queries"
        )
    if kind == "text":
        if not isinstance(value, str) or not value.strip():
            raise PlaitError("empty text query: give some words to search for")
    elif not is_array_cell(str(value)) and not Path(value).expanduser().is_file():
        raise PlaitError(f"{kind} query file not found: {value}")
    return predictor.embed_values(towers[kind], [value])


# ----------------------------------------------------------------------------- contact sheet
def contact_sheet(
    hits: pd.DataFrame, out_html: str | Path, query_label: str, image_column: str
) -> Path:
    """A self-contained HTML page of image hits: a thumbnail (embedded as base64 PNG),
    rank, score and id per hit, written atomically. Returns the page's path.

    `image_column` holds absolute image paths or `file.npy#row` cells (an index's
    metadata keeps them absolute). A hit whose image cannot be read shows a note instead.
    """
    if image_column not in hits.columns:
        raise PlaitError(
            f"the hits have no `{image_column}` column to draw (columns: "
            f"{', '.join(map(str, hits.columns))}); a contact sheet needs an image index"
        )
    extra = [c for c in hits.columns if c not in ("rank", "id", "score", image_column)]
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
