"""A FAISS vector index that keeps string ids and a metadata table beside the vectors.

Why: search ("the images closest to this caption") needs a collection's embeddings in a
structure that answers nearest-neighbour queries fast, and a way back from FAISS's row
numbers to the caller's ids and metadata. `EmbeddingIndex` keeps the three together and
saves them as one plain folder.

Scores are inner products (``faiss.METRIC_INNER_PRODUCT``). With ``normalize=True`` (the
default) every vector is scaled to unit length when it is added and every query when it is
searched, so a score is the cosine similarity, in [-1, 1], higher is closer. An all-zero
vector stays zero and scores 0 against everything.

Kinds
-----
- ``exact`` (``faiss.IndexFlatIP``): compares each query with every stored vector. Always
  the true nearest neighbours, no training and nothing to tune; a query costs N x D
  multiply-adds, which is fine up to about a hundred thousand items.
- ``hnsw`` (``faiss.IndexHNSWFlat``): a navigable graph over the full vectors. Queries take
  about 0.3 ms at a million 384-d items with recall@10 above 0.9 (bench/RESULTS.md);
  building is the slow part (about 2 minutes for 1M on 2 cores with ef_construction=40),
  and memory is the vectors plus ``2 * hnsw_m`` links per item. ``ef_construction`` buys
  graph quality with build time, ``ef_search`` buys recall with query time.
- ``ivfpq`` (FAISS factory ``"IVF{nlist},PQ{pq_m}"``): k-means cells plus product-quantised
  codes of ``pq_m`` bytes per vector instead of ``4 * dim``, so tens of millions of items fit
  in memory. Trained on a sample of the vectors given to `build`; scores are approximate.
  ``nlist`` defaults to ``4 * sqrt(N)`` (at most N / 39: FAISS wants 39 training points per
  cell), ``pq_m`` to the divisor of ``dim`` nearest ``dim / 8`` (48 for 384-d), and each
  query visits ``nprobe = max(16, nlist // 16)`` cells (at most nlist).

The ``auto`` rule (`choose_kind`), applied to the number of vectors given to `build`
------------------------------------------------------------------------------------
- fewer than 100,000 items: ``exact``
- 100,000 to 1,000,000 items: ``hnsw``
- more than 1,000,000 items: ``ivfpq``
Later `add` calls never change the kind: rebuild when a collection outgrows it.

Folder layout (`save` / `load`); no pickle anywhere
---------------------------------------------------
    my-index/
      index.faiss     the FAISS index (faiss.write_index); row i is the i-th item added
      items.parquet   column ``id``, then the metadata columns; row i describes item i
      index.json      format version, kind, dim, count, normalize, search options, info
`save` writes into a hidden sibling folder, then renames the old folder away, renames the
new one in and deletes the old one, so an interrupted save never leaves a half-written index.
It refuses to replace a folder that holds other files.

Metadata columns are fixed by `build`: `add` fills the columns its rows leave out with NA
and rejects columns the index does not have (a misspelt name is caught, not stored).

Example::

    index = EmbeddingIndex.build(vectors, ids, metadata, info={"model": "minilm"})  # [N, D]
    hits = index.search(query_vector, k=5)[0]  # query [D] or [Q, D]; one SearchHits each
    print(hits.to_frame())
    index.save("runs/photos-index")
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import pandas as pd

from plait.errors import PlaitError
from plait.utils.io import atomic_write_folder
from plait.utils.progress import progress_bar

log = logging.getLogger(__name__)

IndexKind = Literal["auto", "exact", "hnsw", "ivfpq"]
KINDS = ("exact", "hnsw", "ivfpq")
EXACT_BELOW = 100_000  # `auto`: a flat scan below this many items
HNSW_UP_TO = 1_000_000  # `auto`: HNSW up to this many items, IVF-PQ past it
FORMAT_VERSION = 1
FILES = ("index.json", "index.faiss", "items.parquet")
RESERVED_COLUMNS = ("id", "rank", "score")  # SearchHits.to_frame puts these first
_ADD_CHUNK = 65_536  # rows per FAISS add call: progress steps, bounded temporary memory


def choose_kind(count: int) -> str:
    """The `auto` rule: ``exact`` below 100,000 items, ``hnsw`` up to 1,000,000, then ``ivfpq``."""
    if count < EXACT_BELOW:
        return "exact"
    if count <= HNSW_UP_TO:
        return "hnsw"
    return "ivfpq"


@dataclass(eq=False)  # eq=False: comparing DataFrames inside a tuple raises in pandas
class SearchHits:
    """The hits for ONE query, best first.

    `scores` are inner products: cosines when the index normalises (its default).
    `metadata` has one row per hit, in the same order, indexed 0..n-1, with exactly the
    metadata columns stored in the index (possibly none).
    """

    ids: list[str]
    scores: list[float]
    metadata: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """One row per hit: rank (1-based), id, score, then the metadata columns."""
        head = pd.DataFrame(
            {"rank": np.arange(1, len(self.ids) + 1), "id": self.ids, "score": self.scores}
        )
        return pd.concat([head, self.metadata.reset_index(drop=True)], axis=1)


class _IndexHits(SearchHits):
    """SearchHits as `EmbeddingIndex.search` returns them: the metadata frame is cut from the
    index's table on first use. Why: cutting a DataFrame costs 50-100 µs per query, a
    quarter of an HNSW query at a million items, and many callers only read ids and scores."""

    def __init__(
        self, ids: list[str], scores: list[float], table: pd.DataFrame, positions: np.ndarray
    ) -> None:
        self.ids = ids
        self.scores = scores
        self._table = table  # the index's metadata table when searched (never edited in place)
        self._positions = positions  # [n] rows of `table`, best hit first
        self._metadata: pd.DataFrame | None = None

    @property
    def metadata(self) -> pd.DataFrame:
        if self._metadata is None:
            if self._table.shape[1] == 0:
                self._metadata = pd.DataFrame(index=pd.RangeIndex(len(self._positions)))
            else:
                self._metadata = self._table.take(self._positions).reset_index(drop=True)
        return self._metadata

    @metadata.setter
    def metadata(self, frame: pd.DataFrame) -> None:
        self._metadata = frame


class EmbeddingIndex:
    """Vectors in a FAISS index, with a string id and a metadata row per vector.

    Make one with `build` or `load`. FAISS numbers vectors 0, 1, 2, ... in the order they
    are added; row i of the id array and of the metadata table describe FAISS row i, so no
    FAISS id map is needed. `info` is free-form JSON-able data saved with the index (for
    example ``{"model": "/path/model", "modality": "image"}``).
    """

    def __init__(
        self,
        faiss_index: faiss.Index,
        kind: str,
        *,
        ids: np.ndarray,
        metadata: pd.DataFrame,
        normalize: bool,
        info: dict | None = None,
        search_options: dict[str, int] | None = None,
        build_options: dict[str, int] | None = None,
    ) -> None:
        self._faiss: Any = faiss_index  # IndexFlatIP, IndexHNSWFlat or IndexIVFPQ
        self.kind = kind
        self.dim = int(faiss_index.d)
        self.normalize = normalize
        self.info = _checked_info(info)
        self._ids = ids  # [N] object array of str, FAISS row order
        self._id_set = set(ids.tolist())
        self._meta = metadata.reset_index(drop=True)  # [N, C], FAISS row order
        self.build_options = dict(build_options or {})
        self.search_options: dict[str, int] = {}
        self.set_search_options(**(search_options or {}))

    def __len__(self) -> int:
        return int(self._faiss.ntotal)

    def __repr__(self) -> str:
        return (
            f"EmbeddingIndex(kind={self.kind!r}, dim={self.dim}, count={len(self)}, "
            f"normalize={self.normalize}, columns={list(self._meta.columns)})"
        )

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying FAISS index, for tuning and benchmarks. Adding to it directly
        breaks the id mapping: use `add`."""
        return self._faiss

    @property
    def ids(self) -> list[str]:
        """Every id, in FAISS row order."""
        return self._ids.tolist()

    @property
    def metadata(self) -> pd.DataFrame:
        """The metadata table, one row per item in FAISS row order (a copy)."""
        return self._meta.copy()

    # ------------------------------------------------------------------ build and add

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        ids: Sequence[str],
        metadata: pd.DataFrame | None = None,
        *,
        kind: IndexKind = "auto",
        normalize: bool = True,
        info: dict | None = None,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
        nlist: int | None = None,
        pq_m: int | None = None,
        nprobe: int | None = None,
        progress: bool = False,
    ) -> EmbeddingIndex:
        """Index `embeddings` [N, D] under `ids` (N unique strings) with optional metadata
        (a DataFrame of N rows; its columns are fixed from now on).

        kind: ``"auto"`` applies `choose_kind(N)`; see the module docstring for the kinds.
        normalize: scale vectors and queries to unit length, so scores are cosines.
        hnsw_m, ef_construction, ef_search: HNSW links per item, build and search beam widths.
        nlist, pq_m, nprobe: IVF-PQ cells, bytes per code and cells visited per query
            (defaults in the module docstring).
        progress: draw a progress bar while vectors are added (on a terminal).
        """
        if kind != "auto" and kind not in KINDS:
            raise PlaitError(f"unknown index kind {kind!r}; choose one of auto, {', '.join(KINDS)}")
        vectors = _as_vectors(embeddings, "embeddings", None, normalize)  # [N, D]
        resolved = choose_kind(len(vectors)) if kind == "auto" else kind
        table = _checked_metadata(metadata, len(vectors))
        id_list = _checked_ids(ids, len(vectors), set())
        faiss_index, search_options, build_options = _new_faiss_index(
            resolved,
            vectors,
            hnsw_m=hnsw_m,
            ef_construction=ef_construction,
            ef_search=ef_search,
            nlist=nlist,
            pq_m=pq_m,
            nprobe=nprobe,
        )
        index = cls(
            faiss_index,
            resolved,
            ids=np.empty(0, dtype=object),
            metadata=table.iloc[:0],
            normalize=normalize,
            info=info,
            search_options=search_options,
            build_options=build_options,
        )
        index._append(vectors, id_list, table, progress)
        return index

    def add(
        self, embeddings: np.ndarray, ids: Sequence[str], metadata: pd.DataFrame | None = None
    ) -> None:
        """Add `embeddings` [N, D] under new, unused `ids`; the kind stays what it is.

        metadata: its columns must be among the index's columns (fixed at build); columns
        it leaves out are filled with NA, and no metadata at all means every column is NA.
        A column the index does not have is an error, so a misspelt name is caught.
        Nothing is changed when an error is raised.
        """
        vectors = _as_vectors(embeddings, "embeddings", self.dim, self.normalize)  # [N, D]
        table = _checked_metadata(metadata, len(vectors))
        extra = [c for c in table.columns if c not in self._meta.columns]
        if extra:
            raise PlaitError(
                f"metadata columns {extra} are not in the index, whose columns are "
                f"{list(self._meta.columns)}; an index's columns are fixed when it is built"
            )
        id_list = _checked_ids(ids, len(vectors), self._id_set)
        self._append(vectors, id_list, table.reindex(columns=self._meta.columns), False)

    def _append(
        self, vectors: np.ndarray, ids: list[str], table: pd.DataFrame, progress: bool
    ) -> None:
        """Add checked, already normalised vectors [N, D] with their ids and metadata rows."""
        with progress_bar(progress, "indexing vectors", len(vectors)) as advance:
            for start in range(0, len(vectors), _ADD_CHUNK):
                chunk = vectors[start : start + _ADD_CHUNK]  # [<=chunk, D]
                self._faiss.add(chunk)
                advance(len(chunk))
        self._ids = np.concatenate([self._ids, np.array(ids, dtype=object)])  # [N_total]
        self._id_set.update(ids)
        if len(self._meta) == 0:
            self._meta = table.reset_index(drop=True)
        else:
            self._meta = pd.concat([self._meta, table], ignore_index=True)  # [N_total, C]

    def set_search_options(
        self, *, ef_search: int | None = None, nprobe: int | None = None
    ) -> None:
        """Trade query time for recall: `ef_search` for hnsw, `nprobe` for ivfpq. Saved with
        the index."""
        if ef_search is not None:
            if self.kind != "hnsw":
                raise PlaitError(f"ef_search applies to hnsw indexes; this one is {self.kind}")
            self._faiss.hnsw.efSearch = _positive_int("ef_search", ef_search)
            self.search_options["ef_search"] = int(ef_search)
        if nprobe is not None:
            if self.kind != "ivfpq":
                raise PlaitError(f"nprobe applies to ivfpq indexes; this one is {self.kind}")
            faiss.extract_index_ivf(self._faiss).nprobe = _positive_int("nprobe", nprobe)
            self.search_options["nprobe"] = int(nprobe)

    # ------------------------------------------------------------------ search

    def search(self, queries: np.ndarray, k: int = 10) -> list[SearchHits]:
        """The `k` best items for each query, best first: one SearchHits per query.

        queries: [Q, D] or a single [D] vector, from the same model as the index.
        k: asking for more than the index holds returns every item. An approximate index
        may return fewer than k hits.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise PlaitError(f"k must be a whole number >= 1 (hits per query), got {k!r}")
        matrix = _as_vectors(queries, "query", self.dim, self.normalize)  # [Q, D]
        scores, positions = self._faiss.search(matrix, min(int(k), len(self)))  # [Q, k'] each
        return self._hits(scores, positions)

    def _hits(self, scores: np.ndarray, positions: np.ndarray) -> list[SearchHits]:
        """Map FAISS rows to ids, one vectorised lookup for the whole batch."""
        found = positions >= 0  # [Q, k]; FAISS pads with -1 when it finds fewer than k
        if found.all():
            flat_positions, flat_scores = positions.ravel(), scores.ravel()  # [Q * k]
            ends: Sequence[int] = range(positions.shape[1], positions.size + 1, positions.shape[1])
        else:
            flat_positions, flat_scores = positions[found], scores[found]  # [H], row-major
            ends = np.cumsum(found.sum(axis=1)).tolist()  # [Q]
        flat_ids = self._ids[flat_positions].tolist()  # [H]
        score_list = flat_scores.tolist()  # [H] Python floats
        table, start = self._meta, 0
        hits: list[SearchHits] = []
        for end in ends:
            rows = flat_positions[start:end]  # [n]
            hits.append(_IndexHits(flat_ids[start:end], score_list[start:end], table, rows))
            start = end
        return hits

    # ------------------------------------------------------------------ save and load

    def save(self, folder: str | Path) -> None:
        """Write the index to `folder` (created, or replaced if it holds a Plait index)."""
        target = Path(os.path.abspath(folder))  # abspath: "." gets a real name and parent
        _check_replaceable(target)
        # built beside the target and swapped in whole: a crash leaves the old index or the new
        atomic_write_folder(target, self._write_files)

    def _write_files(self, folder: Path) -> None:
        faiss.write_index(self._faiss, str(folder / "index.faiss"))
        items = pd.concat([pd.DataFrame({"id": self._ids}), self._meta], axis=1)  # [N, 1 + C]
        try:
            items.to_parquet(folder / "items.parquet", index=False)
        except (ValueError, TypeError, ImportError) as error:  # pyarrow errors subclass these
            raise PlaitError(
                f"the metadata cannot be saved as Parquet ({error}); give each column values "
                "of one type (numbers, strings, booleans or dates)"
            ) from error
        header = {
            "format": "plait-embedding-index",
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "dim": self.dim,
            "count": len(self),
            "metric": "inner_product",
            "normalize": self.normalize,
            "search_options": self.search_options,
            "build_options": self.build_options,
            "info": self.info,
            "faiss_version": faiss.__version__,
        }
        (folder / "index.json").write_text(json.dumps(header, indent=2))  # last: marks it whole

    @classmethod
    def load(cls, folder: str | Path) -> EmbeddingIndex:
        """Read an index written by `save`."""
        folder = Path(folder)
        if not folder.is_dir():
            raise PlaitError(f"{folder} is not a Plait index: the folder does not exist")
        for name in FILES:
            if not (folder / name).is_file():
                raise PlaitError(f"{folder} is not a Plait index: {name} missing")
        header = _read_header(folder / "index.json")
        try:
            faiss_index = faiss.read_index(str(folder / "index.faiss"))
        except RuntimeError as error:
            raise PlaitError(f"{folder / 'index.faiss'} is unreadable: {error}") from error
        items = pd.read_parquet(folder / "items.parquet")
        if "id" not in items.columns:
            raise PlaitError(f"{folder / 'items.parquet'} has no 'id' column")
        counts = {"index.json": header["count"], "index.faiss": faiss_index.ntotal}
        counts["items.parquet"] = len(items)
        if len(set(counts.values())) != 1:
            raise PlaitError(
                f"{folder} is inconsistent: item counts differ ({counts}); save it again"
            )
        if faiss_index.d != header["dim"]:
            raise PlaitError(
                f"{folder} is inconsistent: index.json says {header['dim']}-d vectors, "
                f"index.faiss holds {faiss_index.d}-d"
            )
        return cls(
            faiss_index,
            header["kind"],
            ids=items["id"].astype(str).to_numpy(dtype=object),
            metadata=items.drop(columns="id"),
            normalize=bool(header["normalize"]),
            info=header.get("info") or {},
            search_options=header.get("search_options") or {},
            build_options=header.get("build_options") or {},
        )


# ---------------------------------------------------------------------- checks


def _as_vectors(array: Any, what: str, dim: int | None, normalize: bool) -> np.ndarray:
    """`array` as a C-contiguous float32 [N, D] matrix, L2-normalised when asked.

    A query may be a single [D] vector. Raises PlaitError on a wrong shape, a dimension that
    differs from the index's, or a NaN/inf value (naming the first bad row).
    """
    try:
        matrix = np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise PlaitError(f"{what} must be an array of numbers: {error}") from error
    if matrix.ndim == 1 and what == "query":
        matrix = matrix[None, :]  # [D] -> [1, D]
    if matrix.ndim != 2:
        raise PlaitError(f"{what} must be a 2-D array [count, dim], got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        raise PlaitError(f"{what} is empty (shape {matrix.shape}): pass at least one vector")
    if dim is not None and matrix.shape[1] != dim:
        raise PlaitError(
            f"index holds {dim}-d vectors, {what} {'has' if what == 'query' else 'have'} "
            f"{matrix.shape[1]}: embed with the same "
            "model (and modality projection) as the index"
        )
    if matrix.shape[1] == 0:
        raise PlaitError(f"{what} vectors have 0 dimensions (shape {matrix.shape})")
    if normalize:
        matrix = np.array(matrix, dtype=np.float32, order="C", copy=True)  # [N, D], ours
        faiss.normalize_L2(matrix)  # in place; all-zero rows stay zero, NaN/inf stay non-finite
    else:
        matrix = np.ascontiguousarray(matrix)  # [N, D]
    # One float64 total: finite iff every value is (float32 values cannot overflow it).
    if not math.isfinite(matrix.sum(dtype=np.float64)):
        rows = np.flatnonzero(~np.isfinite(matrix.sum(axis=1, dtype=np.float64)))  # [bad]
        raise PlaitError(
            f"{what} row {rows[0]} contains NaN or infinite values ({len(rows)} such rows in all)"
        )
    return matrix


def _checked_ids(ids: Sequence[str], count: int, taken: set[str]) -> list[str]:
    """`ids` as a list of plain str: one per vector, unique, none already in `taken`."""
    if isinstance(ids, str):
        raise PlaitError("ids must be a sequence of strings, one per vector, not one string")
    id_list = list(ids)
    if len(id_list) != count:
        raise PlaitError(f"got {len(id_list)} ids for {count} vectors: pass one id per vector")
    wrong = next((i for i in id_list if not isinstance(i, str)), None)
    if wrong is not None:
        raise PlaitError(
            f"ids must be strings, got {wrong!r} ({type(wrong).__name__}); "
            "convert them first, e.g. [str(i) for i in ids]"
        )
    id_list = [str(i) for i in id_list]  # numpy str_ -> str
    repeated = [i for i, n in Counter(id_list).items() if n > 1]
    if repeated:
        raise PlaitError(f"duplicate ids: {_few(repeated)}; every id must be unique")
    clashing = [i for i in id_list if i in taken]
    if clashing:
        raise PlaitError(f"ids already in the index: {_few(clashing)}; every id must be unique")
    return id_list


def _checked_metadata(metadata: pd.DataFrame | None, count: int) -> pd.DataFrame:
    """The metadata rows [count, C] with a 0..count-1 index (no columns when None)."""
    if metadata is None:
        return pd.DataFrame(index=pd.RangeIndex(count))
    if not isinstance(metadata, pd.DataFrame):
        raise PlaitError(f"metadata must be a pandas DataFrame, got {type(metadata).__name__}")
    if len(metadata) != count:
        raise PlaitError(f"metadata has {len(metadata)} rows for {count} vectors: one row each")
    bad = [c for c in metadata.columns if not isinstance(c, str)]
    if bad:
        raise PlaitError(f"metadata column names must be strings, got {bad[:5]}")
    reserved = [c for c in metadata.columns if c in RESERVED_COLUMNS]
    if reserved:
        raise PlaitError(
            f"metadata columns {reserved} clash with the names {list(RESERVED_COLUMNS)} used "
            "for search results; rename them (ids are passed separately, not as a column)"
        )
    if metadata.columns.has_duplicates:
        raise PlaitError(f"metadata has repeated column names: {list(metadata.columns)}")
    return metadata.reset_index(drop=True)


def _checked_info(info: dict | None) -> dict:
    if info is None:
        return {}
    if not isinstance(info, dict):
        raise PlaitError(f"info must be a dict, got {type(info).__name__}")
    try:
        return json.loads(json.dumps(info))  # a JSON-only copy: what load will give back
    except (TypeError, ValueError) as error:
        raise PlaitError(
            f"info must hold only JSON values (str, numbers, lists, dicts): {error}"
        ) from error


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise PlaitError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _few(values: list[str], shown: int = 5) -> str:
    more = f" and {len(values) - shown} more" if len(values) > shown else ""
    return ", ".join(repr(v) for v in values[:shown]) + more


# ---------------------------------------------------------------------- FAISS indexes


def _new_faiss_index(
    kind: str,
    vectors: np.ndarray,
    *,
    hnsw_m: int,
    ef_construction: int,
    ef_search: int,
    nlist: int | None,
    pq_m: int | None,
    nprobe: int | None,
) -> tuple[faiss.Index, dict[str, int], dict[str, int]]:
    """An empty (trained when needed) FAISS index for `vectors` [N, D], with its search and
    build options."""
    dim = vectors.shape[1]
    if kind == "exact":
        return faiss.IndexFlatIP(dim), {}, {}
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(
            dim, _positive_int("hnsw_m", hnsw_m), faiss.METRIC_INNER_PRODUCT
        )
        index.hnsw.efConstruction = _positive_int("ef_construction", ef_construction)
        build = {"hnsw_m": int(hnsw_m), "ef_construction": int(ef_construction)}
        return index, {"ef_search": _positive_int("ef_search", ef_search)}, build
    return _trained_ivfpq(vectors, nlist, pq_m, nprobe)


def _trained_ivfpq(
    vectors: np.ndarray, nlist: int | None, pq_m: int | None, nprobe: int | None
) -> tuple[faiss.Index, dict[str, int], dict[str, int]]:
    """An IVF-PQ index trained on a sample of `vectors` [N, D]; sizes clamped for small N."""
    count, dim = vectors.shape
    if count < 2:
        raise PlaitError("an ivfpq index needs at least 2 vectors to train; use kind='exact'")
    m = _pq_bytes(dim, pq_m)
    cells = _ivf_cells(count, nlist)
    bits = 8 if count >= 256 else int(math.log2(count))  # PQ k-means needs 2**bits points
    probe = _positive_int("nprobe", nprobe) if nprobe is not None else max(16, cells // 16)
    index: Any = faiss.index_factory(dim, f"IVF{cells},PQ{m}x{bits}", faiss.METRIC_INNER_PRODUCT)
    index.do_polysemous_training = False  # only for Hamming-filtered search; triples training
    sample_size = min(count, max(64 * cells, 50_000))  # k-means time grows with the sample
    rows = np.sort(np.random.default_rng(0).choice(count, sample_size, replace=False))
    log.info("training IVF%d,PQ%dx%d on %d of %d vectors", cells, m, bits, sample_size, count)
    index.train(vectors[rows])  # [sample, D]
    build = {"nlist": cells, "pq_m": m, "pq_bits": bits, "train_size": int(sample_size)}
    return index, {"nprobe": min(probe, cells)}, build


def _ivf_cells(count: int, nlist: int | None) -> int:
    """nlist: 4 * sqrt(N) by default, clamped to N / 39 (FAISS's minimum points per cell)."""
    wanted = _positive_int("nlist", nlist) if nlist is not None else round(4 * math.sqrt(count))
    most = max(1, count // 39)
    if wanted > most:
        warnings.warn(
            f"ivfpq: {count} vectors can train at most {most} cells (FAISS wants 39 training "
            f"points per cell); using nlist={most} instead of {wanted}",
            stacklevel=5,  # point at the caller of EmbeddingIndex.build
        )
        return most
    return max(1, wanted)


def _pq_bytes(dim: int, pq_m: int | None) -> int:
    """pq_m: must divide dim; by default the divisor nearest dim / 8 (48 for 384-d)."""
    divisors = [d for d in range(1, dim + 1) if dim % d == 0]
    if pq_m is None:
        return min(divisors, key=lambda d: (abs(d - dim / 8), -d))
    if _positive_int("pq_m", pq_m) not in divisors:
        near = sorted(divisors, key=lambda d: abs(d - pq_m))[:3]
        raise PlaitError(f"pq_m={pq_m} must divide the dimension {dim}; try one of {sorted(near)}")
    return int(pq_m)


# ---------------------------------------------------------------------- files


def _read_header(path: Path) -> dict:
    try:
        header = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PlaitError(f"{path} is unreadable: {error}") from error
    missing = [
        k for k in ("format_version", "kind", "dim", "count", "normalize") if k not in header
    ]
    if missing:
        raise PlaitError(f"{path} is not a Plait index header: {missing} missing")
    if header["format_version"] > FORMAT_VERSION:
        raise PlaitError(
            f"{path} has format version {header['format_version']}, newer than this Plait "
            f"reads ({FORMAT_VERSION}): upgrade Plait"
        )
    if header["kind"] not in KINDS:
        raise PlaitError(f"{path}: unknown index kind {header['kind']!r}")
    return header


def _check_replaceable(target: Path) -> None:
    """Refuse to replace anything but a missing or empty folder or a Plait index folder."""
    if not target.exists():
        return
    if not target.is_dir():
        raise PlaitError(f"cannot save an index to {target}: it is a file")
    if any(target.iterdir()) and not (target / "index.json").is_file():
        raise PlaitError(
            f"refusing to save over {target}: it is not empty and not a Plait index "
            "(no index.json); pick another folder"
        )
