"""Metrics of a shared embedding space: cross-modal retrieval and zero-shot classification.

Retrieval ranks a gallery by dot product against each query (cosine similarity when both
sides are L2-normalised, which is the caller's job). Relevance is key equality, so one
function covers both usual protocols:

- pair-level: keys are row ids, each query has exactly one relevant item, its partner
  (an image and its caption);
- label-level: keys are class labels, every gallery item of the query's class counts.

Only the *first* relevant item matters: a query's rank is where the best-scoring relevant
item lands. Ties are counted against the query (pessimistic): every irrelevant item
scoring at least as high as the best relevant one is ranked above it. The usual
optimistic rule (count only strictly higher scores) would give a collapsed model, whose
embeddings are all equal, a perfect R@1; the pessimistic rule gives it the worst rank.
Scores within float rounding of each other (see `tie_tolerance`) count as equal, because
two identical gallery vectors do not always get bit-identical dot products from BLAS.

Example, pair-level retrieval of 3 pairs (row i of each modality is a pair)::

    >>> image = np.eye(3)
    >>> text = np.eye(3)[[0, 2, 1]]  # captions 1 and 2 are swapped
    >>> m = retrieval_metrics(image, text, [0, 1, 2], [0, 1, 2], ks=(1,))
    >>> m["R@1"], m["median_rank"]  # image 1: caption 2 above, caption 0 tied -> rank 3
    (0.3333333333333333, 3.0)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from plait.evaluation.metrics import to_jsonable

#: Ties within this many float epsilons (times sqrt(D)) of the best relevant score are
#: counted against the query; see `tie_tolerance`.
TIE_EPSILONS = 4.0
#: Queries with at most this many relevant items are handled in one vectorised gather.
_GATHER_WIDTH = 64


def retrieval_metrics(
    queries: np.ndarray,
    gallery: np.ndarray,
    query_keys: Sequence[Hashable],
    gallery_keys: Sequence[Hashable],
    ks: Sequence[int] = (1, 5, 10),
    chunk: int = 4096,
) -> dict[str, float]:
    """Recall@k, rank statistics and MRR of ranking `gallery` [G, D] for each of
    `queries` [Q, D] by dot product.

    A gallery item is relevant to a query when their keys are equal. Returns, over the
    queries that have at least one relevant item:

    - `R@k` for each k in `ks`: fraction of queries with a relevant item in the top k;
    - `median_rank`, `mean_rank`: of the 1-based rank of the first relevant item;
    - `mrr`: mean reciprocal rank of the first relevant item;
    - `queries`: how many queries were scored;
    - `skipped`: queries with no relevant gallery item (only present when > 0). When every
      query is skipped the scores are NaN (`null` once through `to_jsonable`).

    Ties count against the query (module docstring). Queries are scored `chunk` at a time,
    so beyond a copy of the inputs memory peaks at about chunk x G x 5 bytes for float32
    inputs (scores and one boolean comparison; 4096 x 100k: 2 GB), never Q x G; lower
    `chunk` to use less. float32 inputs are scored in float32, anything else in float64.
    """
    ks = _check_ks(ks)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    dtype = np.result_type(np.asarray(queries).dtype, np.asarray(gallery).dtype, np.float32)
    q = _embeddings(queries, "queries", dtype)  # (Q, D)
    g = _embeddings(gallery, "gallery", dtype)  # (G, D)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"queries have dimension {q.shape[1]}, gallery {g.shape[1]}")
    if len(query_keys) != len(q) or len(gallery_keys) != len(g):
        raise ValueError(
            f"{len(query_keys)} query keys for {len(q)} queries, "
            f"{len(gallery_keys)} gallery keys for {len(g)} gallery items"
        )
    q_codes, g_codes = _key_codes(query_keys, gallery_keys)  # (Q,), (G,); -1 = not in gallery
    # Group the gallery by key (ranks do not depend on its order): the items relevant to a
    # query are then the slice lo:hi of its row of scores, found without a (C, G) mask.
    order = np.argsort(g_codes, kind="stable")  # (G,)
    g, g_codes = g[order], g_codes[order]
    bounds = np.searchsorted(g_codes, np.arange(len(np.unique(g_codes)) + 1))  # (K + 1,)
    lo = np.where(q_codes >= 0, bounds[q_codes], 0)  # (Q,)
    hi = np.where(q_codes >= 0, bounds[q_codes + 1], 0)  # (Q,)
    tolerance = tie_tolerance(dtype, q.shape[1])

    ranks = np.zeros(len(q), dtype=np.int64)  # (Q,); 0 = skipped
    for start in range(0, len(q), chunk):
        rows = slice(start, min(start + chunk, len(q)))
        ranks[rows] = _chunk_ranks(q[rows], g, lo[rows], hi[rows], tolerance)
    return _summarise(ranks, ks)


def cross_modal_retrieval(
    embeddings: Mapping[str, np.ndarray],
    keys: Sequence[Hashable],
    ks: Sequence[int] = (1, 5, 10),
    chunk: int = 4096,
) -> dict[str, dict[str, float]]:
    """Retrieval in every direction between modalities embedded for the same rows.

    `embeddings` maps modality -> [N, D] (row i of each is one pair, so only complete rows
    may be passed); `keys` [N] are row ids (pair-level) or labels (label-level). Returns
    `{"a->b": retrieval_metrics(queries=a, gallery=b, keys, keys), "b->a": ...}` for each
    ordered pair of modalities, in the mapping's order: with {"image", "text"} that is
    "image->text" (an image finds its caption) then "text->image".
    """
    names = list(embeddings)
    if len(names) < 2:
        raise ValueError(f"cross-modal retrieval needs two modalities, got {names}")
    for name in names:
        if len(embeddings[name]) != len(keys):
            raise ValueError(f"{name}: {len(embeddings[name])} rows for {len(keys)} keys")
    return {
        f"{a}->{b}": retrieval_metrics(embeddings[a], embeddings[b], keys, keys, ks, chunk)
        for a in names
        for b in names
        if a != b
    }


def zeroshot_metrics(
    scores: np.ndarray, truth: Sequence[int], class_names: Sequence[str]
) -> dict[str, Any]:
    """Zero-shot classification from similarities [N, K] of each sample to each class's
    prompt embedding, and the true class indices [N].

    The prediction is the arg-max class (the lowest index on exact ties). Returns
    `accuracy`, `top5_accuracy` (only when K > 5), `macro_f1` (over the classes that occur
    in the truth or the predictions: a class absent from both has no defined F1 and would
    otherwise count as 0), `per_class` {name: precision, recall, f1, support} for all K
    classes, `confusion` (K x K, rows true, columns predicted), `classes` and `samples`.
    """
    scores = np.asarray(scores, dtype=float)
    truth_arr = np.asarray(truth).astype(int).reshape(-1)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D [N, K], got shape {scores.shape}")
    n, k = scores.shape
    if len(class_names) != k:
        raise ValueError(f"{len(class_names)} class names for {k} score columns")
    if len(truth_arr) != n:
        raise ValueError(f"{len(truth_arr)} labels for {n} rows of scores")
    if n == 0:
        raise ValueError("cannot compute metrics on zero samples")
    if truth_arr.min() < 0 or truth_arr.max() >= k:
        raise ValueError(f"labels must lie in 0..{k - 1}, got {truth_arr.min()}..{truth_arr.max()}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity")
    labels = list(range(k))
    pred = scores.argmax(axis=1)  # (N,)

    out: dict[str, Any] = {"accuracy": skm.accuracy_score(truth_arr, pred)}
    if k > 5:
        out["top5_accuracy"] = skm.top_k_accuracy_score(truth_arr, scores, k=5, labels=labels)
    out["macro_f1"] = skm.f1_score(truth_arr, pred, average="macro", zero_division=0)
    p, r, f, s = skm.precision_recall_fscore_support(
        truth_arr, pred, labels=labels, average=None, zero_division=0
    )
    out["per_class"] = {
        str(name): {"precision": p[i], "recall": r[i], "f1": f[i], "support": int(s[i])}
        for i, name in enumerate(class_names)
    }
    out["confusion"] = skm.confusion_matrix(truth_arr, pred, labels=labels)
    out["classes"] = [str(name) for name in class_names]
    out["samples"] = n
    return to_jsonable(out)


def tie_tolerance(dtype: np.dtype | type, dim: int) -> float:
    """Score difference below which two scores count as tied: `TIE_EPSILONS` float
    epsilons times sqrt(D), the typical rounding of a D-term dot product of unit vectors
    (float32, D = 512: about 1e-5; float64: about 2e-14)."""
    return TIE_EPSILONS * float(np.finfo(dtype).eps) * math.sqrt(max(dim, 1))


# ----------------------------------------------------------------------------- helpers


def _chunk_ranks(
    q: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray, tolerance: float
) -> np.ndarray:
    """1-based pessimistic rank [C] of the best relevant item of each query, whose relevant
    items are gallery rows lo:hi; 0 where there are none (lo == hi)."""
    scores = q @ g.T  # (C, G)
    rows = np.flatnonzero(hi > lo)  # (R,) queries with something relevant
    row_threshold, relevant_above = _relevant_best(scores, rows, lo[rows], hi[rows], tolerance)
    threshold = np.full(len(q), np.inf, dtype=scores.dtype)  # (C,)
    threshold[rows] = row_threshold
    at_or_above = np.count_nonzero(scores >= threshold[:, None], axis=1)  # (C,)
    ranks = np.zeros(len(q), dtype=np.int64)
    # Everything at or above the threshold except the relevant items ranks above the best.
    ranks[rows] = 1 + at_or_above[rows] - relevant_above
    return ranks


def _relevant_best(
    scores: np.ndarray, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per query row [R]: the tie threshold below its best relevant score, and how many
    relevant items reach it (the best included). Few relevant items per query
    (pair-level): one padded gather; many (label-level): a loop of long vector ops."""
    sizes = hi - lo  # (R,)
    width = int(sizes.max()) if len(sizes) else 0
    if width <= _GATHER_WIDTH:
        offsets = np.arange(width)  # (L,)
        valid = offsets[None, :] < sizes[:, None]  # (R, L)
        columns = np.minimum(lo[:, None] + offsets[None, :], hi[:, None] - 1)  # (R, L)
        segment = scores[rows[:, None], columns]  # (R, L); padding repeats a real score
        best = segment.max(axis=1, initial=-np.inf)  # (R,)
        threshold = _tie_threshold(best, tolerance)  # (R,)
        above = np.count_nonzero((segment >= threshold[:, None]) & valid, axis=1)
        return threshold, above
    threshold = np.empty(len(rows), dtype=scores.dtype)
    above = np.empty(len(rows), dtype=np.int64)
    for j, (row, start, stop) in enumerate(zip(rows, lo, hi, strict=True)):
        segment = scores[row, start:stop]  # (L_j,)
        threshold[j] = _tie_threshold(segment.max(keepdims=True), tolerance)[0]
        above[j] = np.count_nonzero(segment >= threshold[j])
    return threshold, above


def _tie_threshold(best: np.ndarray, tolerance: float) -> np.ndarray:
    """Lowest score that still ties with `best` (same dtype as `best`)."""
    return best - tolerance * np.maximum(1.0, np.abs(best))


def _summarise(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    used = ranks[ranks > 0].astype(float)  # (Q_used,)
    skipped = int(len(ranks) - len(used))
    out: dict[str, float] = {}
    empty = len(used) == 0
    for k in ks:
        out[f"R@{k}"] = math.nan if empty else float(np.mean(used <= k))
    out["median_rank"] = math.nan if empty else float(np.median(used))
    out["mean_rank"] = math.nan if empty else float(np.mean(used))
    out["mrr"] = math.nan if empty else float(np.mean(1.0 / used))
    out["queries"] = len(used)
    if skipped:
        out["skipped"] = skipped
    return out


def _check_ks(ks: Sequence[int]) -> list[int]:
    checked = [int(k) for k in ks]
    if not checked or min(checked) < 1:
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    return checked


def _embeddings(array: np.ndarray, name: str, dtype: np.dtype) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=dtype)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, D], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinity")
    return array


def _key_codes(
    query_keys: Sequence[Hashable], gallery_keys: Sequence[Hashable]
) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes such that equal keys get equal codes; query keys absent from the
    gallery get -1 (such a query has nothing relevant)."""
    codes: dict[Hashable, int] = {}
    g_codes = np.array([codes.setdefault(key, len(codes)) for key in gallery_keys], dtype=np.int64)
    q_codes = np.array([codes.get(key, -1) for key in query_keys], dtype=np.int64)
    return q_codes, g_codes
