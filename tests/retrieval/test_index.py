"""EmbeddingIndex: each kind finds what it should, ids follow FAISS rows, save/load round
trips, and bad input fails with a message that says what to fix."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plait.errors import PlaitError
from plait.retrieval.index import EmbeddingIndex, SearchHits, choose_kind


def random_vectors(count: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)


def clustered_vectors(count: int, dim: int, seed: int = 0, clusters: int = 40) -> np.ndarray:
    """Embedding-like data: cluster centres in a 16-d latent space, projected to `dim`."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((16, dim)).astype(np.float32)  # [16, D]
    centres = 3.0 * rng.standard_normal((clusters, 16)).astype(np.float32)  # [C, 16]
    latent = centres[rng.integers(0, clusters, count)] + rng.standard_normal((count, 16))
    noise = 0.3 * rng.standard_normal((count, dim))
    return (latent @ basis + noise).astype(np.float32)  # [count, D]


def names(count: int, prefix: str = "item") -> list[str]:
    return [f"{prefix}-{i}" for i in range(count)]


def top_ids(hits: list[SearchHits]) -> list[str]:
    return [h.ids[0] for h in hits]


@pytest.fixture(scope="module")
def ivfpq_data() -> tuple[np.ndarray, EmbeddingIndex]:
    vectors = clustered_vectors(4000, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nlist is clamped for 4,000 points: tested below
        index = EmbeddingIndex.build(vectors, names(4000), kind="ivfpq")
    return vectors, index


# ---------------------------------------------------------------------- kinds


def test_choose_kind_thresholds() -> None:
    assert choose_kind(1) == "exact"
    assert choose_kind(99_999) == "exact"
    assert choose_kind(100_000) == "hnsw"
    assert choose_kind(1_000_000) == "hnsw"
    assert choose_kind(1_000_001) == "ivfpq"


def test_auto_picks_exact_for_small_collections() -> None:
    index = EmbeddingIndex.build(random_vectors(50, 8), names(50))
    assert index.kind == "exact" and len(index) == 50 and index.dim == 8


def test_exact_returns_each_stored_vector_first() -> None:
    vectors = random_vectors(500, 32)
    index = EmbeddingIndex.build(vectors, names(500), kind="exact")
    hits = index.search(vectors, k=3)
    assert top_ids(hits) == names(500)
    assert all(h.scores[0] == pytest.approx(1.0, abs=1e-5) for h in hits)
    assert all(h.scores == sorted(h.scores, reverse=True) for h in hits)


def test_hnsw_recall_at_10_against_exact() -> None:
    vectors, queries = random_vectors(3000, 32), random_vectors(200, 32, seed=1)
    exact = EmbeddingIndex.build(vectors, names(3000), kind="exact")
    hnsw = EmbeddingIndex.build(vectors, names(3000), kind="hnsw", ef_search=64)
    assert hnsw.kind == "hnsw" and hnsw.search_options == {"ef_search": 64}
    truth, found = exact.search(queries, 10), hnsw.search(queries, 10)
    recall = np.mean([len(set(t.ids) & set(f.ids)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall > 0.9


def test_ivfpq_finds_own_vector_on_clustered_data(ivfpq_data) -> None:
    vectors, index = ivfpq_data
    assert index.kind == "ivfpq"
    assert index.build_options["pq_m"] == 8  # 64 / 8
    assert index.build_options["nlist"] == 4000 // 39  # 4 * sqrt(4000) = 253, clamped
    hits = index.search(vectors[:300], k=10)
    found = np.mean([f"item-{i}" in h.ids for i, h in enumerate(hits)])
    assert found > 0.8


def test_ivfpq_warns_when_nlist_is_clamped_and_works_on_tiny_sets() -> None:
    with pytest.warns(UserWarning, match="nlist=2 instead of 500"):
        index = EmbeddingIndex.build(random_vectors(100, 16), names(100), kind="ivfpq", nlist=500)
    assert index.build_options["nlist"] == 2 and index.build_options["pq_bits"] == 6
    assert len(index.search(random_vectors(1, 16), k=5)[0].ids) >= 1
    with pytest.raises(PlaitError, match="must divide the dimension 16"):
        EmbeddingIndex.build(random_vectors(100, 16), names(100), kind="ivfpq", pq_m=5)


def test_default_pq_m_for_384_dimensions() -> None:
    from plait.retrieval.index import _pq_bytes

    assert _pq_bytes(384, None) == 48
    assert _pq_bytes(512, None) == 64
    assert 100 % _pq_bytes(100, None) == 0


def test_missing_results_are_dropped_not_returned_as_minus_one(ivfpq_data) -> None:
    vectors, index = ivfpq_data
    index.set_search_options(nprobe=1)  # one cell: far fewer than 1,000 candidates
    try:
        hits = index.search(vectors[:3], k=1000)
    finally:
        index.set_search_options(nprobe=16)
    for h in hits:
        assert 0 < len(h.ids) < 1000
        assert len(h.scores) == len(h.ids) == len(h.metadata)
        assert all(i.startswith("item-") for i in h.ids)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_rows_added_later_map_to_their_ids(kind: str) -> None:
    vectors = random_vectors(1200, 24)
    index = EmbeddingIndex.build(vectors[:1000], names(1000), kind=kind)
    index.add(vectors[1000:], names(200, prefix="new"))
    assert len(index) == 1200
    assert top_ids(index.search(vectors, k=1)) == names(1000) + names(200, prefix="new")


def test_ivfpq_rows_added_after_load_map_to_their_ids(ivfpq_data, tmp_path: Path) -> None:
    _, index = ivfpq_data
    index.save(tmp_path / "idx")
    grown = EmbeddingIndex.load(tmp_path / "idx")  # a copy: the fixture stays as it is
    extra = clustered_vectors(200, 64, seed=5)
    grown.add(extra, names(200, prefix="new"))
    assert len(grown) == 4200
    hits = grown.search(extra, k=10)
    assert np.mean([f"new-{i}" in h.ids for i, h in enumerate(hits)]) > 0.8


# ---------------------------------------------------------------------- results


def test_search_hits_metadata_and_frame() -> None:
    vectors = random_vectors(20, 8)
    meta = pd.DataFrame({"label": [f"l{i}" for i in range(20)], "size": np.arange(20)})
    index = EmbeddingIndex.build(vectors, names(20), meta)
    hits = index.search(vectors[7], k=4)  # a single [D] query
    assert len(hits) == 1
    (best,) = hits
    assert best.ids[0] == "item-7"
    assert list(best.metadata.columns) == ["label", "size"]
    assert list(best.metadata.index) == [0, 1, 2, 3]
    assert best.metadata["size"].tolist() == [int(i.split("-")[1]) for i in best.ids]
    assert best.metadata is best.metadata  # built once
    frame = best.to_frame()
    assert list(frame.columns) == ["rank", "id", "score", "label", "size"]
    assert frame["rank"].tolist() == [1, 2, 3, 4] and frame["id"].tolist() == best.ids
    assert "item-7" in repr(best)


def test_metadata_with_no_columns_has_one_row_per_hit() -> None:
    index = EmbeddingIndex.build(random_vectors(10, 4), names(10))
    hits = index.search(random_vectors(2, 4, seed=3), k=3)
    assert [h.metadata.shape for h in hits] == [(3, 0), (3, 0)]
    assert list(hits[0].to_frame().columns) == ["rank", "id", "score"]


def test_search_hits_can_be_built_by_hand() -> None:
    hits = SearchHits(ids=["a"], scores=[0.5], metadata=pd.DataFrame({"x": [1]}))
    assert hits.to_frame().to_dict("records") == [{"rank": 1, "id": "a", "score": 0.5, "x": 1}]


def test_k_larger_than_the_index_returns_every_item() -> None:
    for kind in ("exact", "hnsw"):
        index = EmbeddingIndex.build(random_vectors(7, 8), names(7), kind=kind)
        (hits,) = index.search(random_vectors(1, 8, seed=2), k=50)
        assert sorted(hits.ids) == sorted(names(7))


# ---------------------------------------------------------------------- normalisation


def test_scores_are_cosines_and_scale_does_not_matter() -> None:
    vectors = random_vectors(100, 16)
    index = EmbeddingIndex.build(vectors, names(100))
    hits = index.search(vectors[3] * 7.5, k=100)[0]
    assert hits.ids[0] == "item-3" and hits.scores[0] == pytest.approx(1.0, abs=1e-5)
    assert all(-1.0 - 1e-5 <= s <= 1.0 + 1e-5 for s in hits.scores)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = sorted((unit @ unit[3]).tolist(), reverse=True)
    assert hits.scores == pytest.approx(expected, abs=1e-5)


def test_without_normalize_scores_are_raw_inner_products(tmp_path: Path) -> None:
    vectors = random_vectors(30, 8)
    index = EmbeddingIndex.build(vectors, names(30), normalize=False)
    hits = index.search(vectors[0] * 2, k=1)[0]
    raw = vectors @ (vectors[0] * 2)  # [30] plain inner products
    assert hits.ids == [f"item-{raw.argmax()}"]
    assert hits.scores[0] == pytest.approx(float(raw.max()), rel=1e-4)
    index.save(tmp_path / "raw")
    assert EmbeddingIndex.load(tmp_path / "raw").normalize is False


def test_build_does_not_change_the_callers_array() -> None:
    vectors = random_vectors(10, 4)
    before = vectors.copy()
    EmbeddingIndex.build(vectors, names(10)).search(vectors, k=2)
    np.testing.assert_array_equal(vectors, before)


# ---------------------------------------------------------------------- save and load


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivfpq"])
def test_save_load_round_trip(kind: str, tmp_path: Path, ivfpq_data) -> None:
    if kind == "ivfpq":
        vectors, index = ivfpq_data
    else:
        vectors = random_vectors(300, 16)
        meta = pd.DataFrame({"label": [f"l{i % 5}" for i in range(300)], "n": np.arange(300)})
        index = EmbeddingIndex.build(vectors, names(300), meta, kind=kind, info={"model": "m"})
    index.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        "index.faiss",
        "index.json",
        "items.parquet",
    ]
    loaded = EmbeddingIndex.load(tmp_path / "idx")
    assert (loaded.kind, loaded.dim, len(loaded)) == (index.kind, index.dim, len(index))
    assert loaded.info == index.info and loaded.search_options == index.search_options
    queries = vectors[:20] + 0.01
    for before, after in zip(index.search(queries, 5), loaded.search(queries, 5), strict=True):
        assert after.ids == before.ids and after.scores == before.scores
        pd.testing.assert_frame_equal(after.metadata, before.metadata)
    header = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert header["format_version"] == 1 and header["count"] == len(index)
    assert header["normalize"] is True


def test_add_after_load_grows_the_index(tmp_path: Path) -> None:
    vectors = random_vectors(60, 8)
    meta = pd.DataFrame({"label": ["old"] * 50, "n": np.arange(50)})
    EmbeddingIndex.build(vectors[:50], names(50), meta).save(tmp_path / "idx")
    index = EmbeddingIndex.load(tmp_path / "idx")
    index.add(vectors[50:], names(10, prefix="new"), pd.DataFrame({"label": ["new"] * 10}))
    assert len(index) == 60
    hits = index.search(vectors[55], k=1)[0]
    assert hits.ids == ["new-5"]
    assert hits.metadata["label"].tolist() == ["new"] and hits.metadata["n"].isna().all()
    index.save(tmp_path / "idx")
    assert len(EmbeddingIndex.load(tmp_path / "idx")) == 60


def test_save_over_an_existing_index_replaces_it(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    EmbeddingIndex.build(random_vectors(10, 4), names(10)).save(target)
    EmbeddingIndex.build(random_vectors(5, 6), names(5, prefix="b")).save(target)
    loaded = EmbeddingIndex.load(target)
    assert (len(loaded), loaded.dim, loaded.ids[0]) == (5, 6, "b-0")
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]  # no staging or old folder left


def test_save_refuses_to_replace_a_folder_that_is_not_an_index(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"jpeg")
    with pytest.raises(PlaitError, match="not a Plait index"):
        EmbeddingIndex.build(random_vectors(3, 4), names(3)).save(tmp_path / "photos")
    assert (tmp_path / "photos" / "cat.jpg").exists()


def test_load_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(PlaitError, match="does not exist"):
        EmbeddingIndex.load(tmp_path / "nowhere")
    EmbeddingIndex.build(random_vectors(10, 4), names(10)).save(tmp_path / "idx")
    (tmp_path / "idx" / "index.json").unlink()
    with pytest.raises(PlaitError, match="is not a Plait index: index.json missing"):
        EmbeddingIndex.load(tmp_path / "idx")


def test_load_detects_a_count_mismatch(tmp_path: Path) -> None:
    EmbeddingIndex.build(random_vectors(10, 4), names(10)).save(tmp_path / "idx")
    items = pd.read_parquet(tmp_path / "idx" / "items.parquet")
    items.iloc[:7].to_parquet(tmp_path / "idx" / "items.parquet", index=False)
    with pytest.raises(PlaitError, match="counts differ"):
        EmbeddingIndex.load(tmp_path / "idx")


# ---------------------------------------------------------------------- bad input


def test_duplicate_ids_are_named() -> None:
    vectors = random_vectors(4, 4)
    with pytest.raises(PlaitError, match="duplicate ids: 'a', 'b'"):
        EmbeddingIndex.build(vectors, ["a", "b", "a", "b"])
    index = EmbeddingIndex.build(vectors, ["a", "b", "c", "d"])
    with pytest.raises(PlaitError, match="already in the index: 'c'"):
        index.add(random_vectors(2, 4), ["e", "c"])
    assert len(index) == 4  # nothing added


def test_ids_and_metadata_must_match_the_rows() -> None:
    vectors = random_vectors(4, 4)
    with pytest.raises(PlaitError, match="got 3 ids for 4 vectors"):
        EmbeddingIndex.build(vectors, ["a", "b", "c"])
    with pytest.raises(PlaitError, match="ids must be strings"):
        EmbeddingIndex.build(vectors, [1, 2, 3, 4])  # type: ignore[list-item]
    with pytest.raises(PlaitError, match="metadata has 2 rows for 4 vectors"):
        EmbeddingIndex.build(vectors, names(4), pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(PlaitError, match="clash"):
        EmbeddingIndex.build(vectors, names(4), pd.DataFrame({"id": names(4)}))
    index = EmbeddingIndex.build(vectors, names(4), pd.DataFrame({"x": range(4)}))
    with pytest.raises(PlaitError, match=r"columns \['y'\] are not in the index"):
        index.add(random_vectors(1, 4), ["new"], pd.DataFrame({"y": [1]}))


def test_wrong_dimension_is_explained() -> None:
    index = EmbeddingIndex.build(random_vectors(5, 384), names(5))
    with pytest.raises(PlaitError, match="index holds 384-d vectors, query has 512"):
        index.search(random_vectors(2, 512))
    with pytest.raises(PlaitError, match="index holds 384-d vectors, embeddings have 512"):
        index.add(random_vectors(2, 512), ["x", "y"])


def test_nan_rows_are_named() -> None:
    vectors = random_vectors(6, 4)
    vectors[4, 2] = np.nan
    vectors[5, 0] = np.inf
    with pytest.raises(PlaitError, match="embeddings row 4 contains NaN or infinite"):
        EmbeddingIndex.build(vectors, names(6))
    index = EmbeddingIndex.build(random_vectors(3, 4), names(3))
    with pytest.raises(PlaitError, match="query row 1 contains NaN"):
        index.search(vectors[3:5])


def test_empty_inputs_and_bad_k() -> None:
    with pytest.raises(PlaitError, match="embeddings is empty"):
        EmbeddingIndex.build(np.zeros((0, 8), np.float32), [])
    index = EmbeddingIndex.build(random_vectors(3, 8), names(3))
    with pytest.raises(PlaitError, match="query is empty"):
        index.search(np.zeros((0, 8), np.float32))
    with pytest.raises(PlaitError, match="k must be a whole number >= 1"):
        index.search(random_vectors(1, 8), k=0)
    with pytest.raises(PlaitError, match="unknown index kind 'flat'"):
        EmbeddingIndex.build(random_vectors(3, 8), names(3), kind="flat")  # type: ignore[arg-type]
    with pytest.raises(PlaitError, match="JSON"):
        EmbeddingIndex.build(random_vectors(3, 8), names(3), info={"path": Path(".")})
