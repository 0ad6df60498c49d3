"""Retrieval and zero-shot metrics on embeddings small enough to rank by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plait.evaluation import cross_modal_retrieval, retrieval_metrics, zeroshot_metrics
from plait.evaluation.retrieval import tie_tolerance

# Gallery g0 = (1, 0), g1 = (0, 1), g2 = (0.6, 0.8); queries q0 = (1, 0), q1 = (0, 1),
# q2 = (0.8, 0.6). Scores (rows: queries, columns: gallery):
#   q0: 1.0  0.0  0.6
#   q1: 0.0  1.0  0.8
#   q2: 0.8  0.6  0.96
GALLERY = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
QUERIES = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])


def test_known_ranks() -> None:
    # q0 -> g0 (best, rank 1); q1 -> g2 (0.8, below g1's 1.0: rank 2);
    # q2 -> g1 (0.6, below 0.96 and 0.8: rank 3).
    m = retrieval_metrics(QUERIES, GALLERY, ["a", "c", "b"], ["a", "b", "c"], ks=(1, 2, 5))
    assert list(m) == ["R@1", "R@2", "R@5", "median_rank", "mean_rank", "mrr", "queries"]
    assert m["R@1"] == pytest.approx(1 / 3)
    assert m["R@2"] == pytest.approx(2 / 3)
    assert m["R@5"] == 1.0
    assert m["median_rank"] == 2.0
    assert m["mean_rank"] == 2.0
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert m["queries"] == 3
    assert "skipped" not in m


def test_perfect_pairs_and_float32() -> None:
    keys = [0, 1, 2]
    m = retrieval_metrics(QUERIES.astype(np.float32), GALLERY.astype(np.float32), keys, keys)
    assert (m["R@1"], m["median_rank"], m["mrr"], m["queries"]) == (1.0, 1.0, 1.0, 3)


def test_ties_count_against_the_query() -> None:
    # Two identical gallery vectors: the relevant one ties with an irrelevant one.
    gallery = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    m = retrieval_metrics(np.array([[1.0, 0.0]]), gallery, ["y"], ["x", "y", "z"], ks=(1, 2))
    assert (m["R@1"], m["R@2"], m["median_rank"], m["mrr"]) == (0.0, 1.0, 2.0, 0.5)
    # Collapsed embeddings (all equal) rank every relevant item last, not first.
    flat = np.ones((4, 3)) / np.sqrt(3)
    m = retrieval_metrics(flat, flat, range(4), range(4), ks=(1,))
    assert m["R@1"] == 0.0 and m["median_rank"] == 4.0


def test_rounding_noise_is_a_tie() -> None:
    # The relevant g0 beats g1 by less than float32 rounding: a tie, so g1 goes above.
    query = np.array([[1.0, 0.0]], np.float32)
    delta = tie_tolerance(np.float32, 2) / 10
    gallery = np.array([[1.0, 0.0], [1.0 - delta, 0.0]], dtype=np.float32)
    assert retrieval_metrics(query, gallery, [0], [0, 1], ks=(1,))["median_rank"] == 2.0
    # Beating it by 1e-3 is a genuine win.
    gallery = np.array([[1.0, 0.0], [0.999, 0.0]], dtype=np.float32)
    assert retrieval_metrics(query, gallery, [0], [0, 1], ks=(1,))["median_rank"] == 1.0


def test_label_level_relevance() -> None:
    # Labels: g0 "cat", g1 "dog", g2 "dog". Several relevant items: the best one counts.
    gallery_keys = ["cat", "dog", "dog"]
    m = retrieval_metrics(QUERIES, GALLERY, ["dog", "cat", "dog"], gallery_keys, ks=(1, 2))
    # q0 "dog": best dog is g2 (0.6) below g0 (1.0) -> rank 2.
    # q1 "cat": g0 scores 0.0, below g1 (1.0) and g2 (0.8) -> rank 3.
    # q2 "dog": g2 scores 0.96, the top -> rank 1.
    assert m["R@1"] == pytest.approx(1 / 3)
    assert m["R@2"] == pytest.approx(2 / 3)
    assert m["median_rank"] == 2.0
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)


def test_queries_without_relevant_items_are_skipped() -> None:
    m = retrieval_metrics(QUERIES, GALLERY, ["a", "zebra", "b"], ["a", "b", "c"], ks=(1,))
    # q0 -> g0 rank 1; q2 -> g1 (0.6) rank 3; q1 has nothing relevant.
    assert m["queries"] == 2 and m["skipped"] == 1
    assert m["R@1"] == 0.5 and m["median_rank"] == 2.0
    m = retrieval_metrics(QUERIES, GALLERY, ["x", "y", "z"], ["a", "b", "c"], ks=(1,))
    assert m["queries"] == 0 and m["skipped"] == 3 and np.isnan(m["R@1"])


def test_chunking_changes_nothing() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(53, 8)).astype(np.float32)
    g = rng.normal(size=(41, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q_keys = rng.integers(0, 7, size=53).tolist()  # label 6 is never in the gallery
    g_keys = rng.integers(0, 6, size=41).tolist()
    full = retrieval_metrics(q, g, q_keys, g_keys, chunk=10_000)
    assert full["skipped"] > 0 and 0 < full["R@1"] < 1
    for chunk in (1, 7, 53):
        assert retrieval_metrics(q, g, q_keys, g_keys, chunk=chunk) == full


def test_input_checks() -> None:
    with pytest.raises(ValueError, match="dimension"):
        retrieval_metrics(QUERIES, np.ones((3, 4)), [0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="keys"):
        retrieval_metrics(QUERIES, GALLERY, [0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(QUERIES * np.nan, GALLERY, [0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="ks"):
        retrieval_metrics(QUERIES, GALLERY, [0, 1, 2], [0, 1, 2], ks=(0,))


def test_cross_modal_directions() -> None:
    keys = ["a", "b", "c"]
    # text row 1 is close to image row 2 and vice versa: image->text and text->image differ.
    image, text = QUERIES, GALLERY[[0, 2, 1]]
    out = cross_modal_retrieval({"image": image, "text": text}, keys, ks=(1,))
    assert list(out) == ["image->text", "text->image"]
    assert out["image->text"] == retrieval_metrics(image, text, keys, keys, ks=(1,))
    assert out["text->image"] == retrieval_metrics(text, image, keys, keys, ks=(1,))
    assert out["image->text"] != out["text->image"]
    with pytest.raises(ValueError, match="two modalities"):
        cross_modal_retrieval({"image": image}, keys)
    with pytest.raises(ValueError, match="rows"):
        cross_modal_retrieval({"image": image, "text": text[:2]}, keys)


def test_zeroshot_tiny() -> None:
    scores = np.array(
        [
            [0.9, 0.1, 0.0],  # true 0, predicted 0
            [0.2, 0.7, 0.1],  # true 1, predicted 1
            [0.6, 0.3, 0.1],  # true 1, predicted 0
            [0.1, 0.2, 0.8],  # true 2, predicted 2
        ]
    )
    m = zeroshot_metrics(scores, [0, 1, 1, 2], ["cat", "dog", "<b>"])
    assert m["accuracy"] == 0.75
    assert "top5_accuracy" not in m  # only 3 classes
    assert m["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert m["per_class"]["cat"] == {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    assert m["per_class"]["dog"]["recall"] == 0.5 and m["per_class"]["dog"]["precision"] == 1.0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["classes"] == ["cat", "dog", "<b>"] and m["samples"] == 4
    json.dumps(m, allow_nan=False)


def test_zeroshot_top5_and_absent_classes() -> None:
    # 7 classes, two samples of class 1; classes 2..6 never occur and are never predicted.
    scores = np.zeros((2, 7))
    scores[0, [0, 3, 4, 5, 6, 1]] = [6, 5, 4, 3, 2, 1]  # predicted 0; true 1 ranks 6th
    scores[1, [0, 1]] = [1, 2]  # predicted 1
    m = zeroshot_metrics(scores, [1, 1], [f"c{i}" for i in range(7)])
    assert m["accuracy"] == 0.5 and m["top5_accuracy"] == 0.5
    # F1: class 0 is 0, class 1 is 2/3; averaged over those two, not over all 7.
    assert m["macro_f1"] == pytest.approx(1 / 3)
    assert len(m["confusion"]) == 7 and m["per_class"]["c6"]["support"] == 0
    with pytest.raises(ValueError, match="labels"):
        zeroshot_metrics(scores, [1, 7], [f"c{i}" for i in range(7)])


def _reference_ranks(q: np.ndarray, g: np.ndarray, q_keys: list, g_keys: list) -> list[int]:
    """Brute force, one query at a time: 1 + irrelevant items scoring >= the best relevant."""
    ranks = []
    for row, key in zip(q @ g.T, q_keys, strict=True):
        relevant = np.array([k == key for k in g_keys])
        if relevant.any():
            ranks.append(1 + int(np.sum(row[~relevant] >= row[relevant].max())))
    return ranks


@pytest.mark.parametrize("gather_width", [0, 64])
def test_matches_brute_force(monkeypatch: pytest.MonkeyPatch, gather_width: int) -> None:
    """Both code paths (gather for few relevant items, row loop for many) agree with a
    brute-force ranking, for pair-level and label-level keys."""
    monkeypatch.setattr("plait.evaluation.retrieval._GATHER_WIDTH", gather_width)
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(30, 5)), rng.normal(size=(200, 5))
    for q_keys, g_keys in (
        (list(range(30)), list(range(200))),
        (rng.integers(0, 3, 30).tolist(), rng.integers(0, 3, 200).tolist()),
    ):
        ranks = np.array(_reference_ranks(q, g, q_keys, g_keys), dtype=float)
        m = retrieval_metrics(q, g, q_keys, g_keys, ks=(1, 10), chunk=8)
        assert m["queries"] == len(ranks)
        assert m["R@10"] == np.mean(ranks <= 10)
        assert m["median_rank"] == np.median(ranks)
        assert m["mrr"] == pytest.approx(np.mean(1 / ranks))
