"""Embedding files (.parquet and .npy + ids sidecar) and embedding a table with an aligned model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import plait
from plait.alignment.predictor import AlignedPredictor
from plait.api import embed as embed_api
from plait.api import predict as predict_api
from plait.api import train_run as fit
from plait.config import PlaitConfig
from plait.errors import PlaitError
from plait.retrieval.embed import (
    embed_table,
    read_embeddings,
    sidecar_path,
    write_embeddings,
)


@pytest.fixture(scope="module")
def model_dir(tiny_config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A caption <-> image model, trained once for the module (about 2 s)."""
    out = tmp_path_factory.mktemp("embed-runs")
    raw = tiny_config(out, name="align", alignment={"dim": 16, "pair": ["caption", "image"]})
    return fit(PlaitConfig.from_dict(raw)).model_dir


@pytest.fixture(scope="module")
def model(model_dir: Path) -> AlignedPredictor:
    loaded = plait.load(model_dir)
    assert isinstance(loaded, AlignedPredictor)
    return loaded


def _sample(n: int = 5, dim: int = 8) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    ids = [f"item-{i}" for i in range(n)]
    metadata = pd.DataFrame({"path": [f"/data/{i}.png" for i in range(n)], "label": list("abcab")})
    return ids, vectors, metadata


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
def test_round_trip_keeps_ids_vectors_and_metadata(tmp_path, suffix):
    ids, vectors, metadata = _sample()
    path = write_embeddings(tmp_path / f"emb{suffix}", ids, vectors, metadata)
    got_ids, got_vectors, got_meta = read_embeddings(path)
    assert got_ids == ids
    assert got_vectors.dtype == np.float32 and got_vectors.shape == (5, 8)
    np.testing.assert_array_equal(got_vectors, vectors)
    pd.testing.assert_frame_equal(got_meta.reset_index(drop=True), metadata, check_dtype=False)
    if suffix == ".npy":
        assert sidecar_path(path).name == "emb.ids.parquet" and sidecar_path(path).is_file()
        assert np.load(path).shape == (5, 8)
    else:  # one fixed-width list column, readable by any Arrow tool
        schema = pq.read_schema(path)
        assert schema.names[:2] == ["id", "embedding"]
        assert pa.types.is_fixed_size_list(schema.field("embedding").type)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic, no leftovers


def test_round_trip_without_metadata_and_with_zero_rows(tmp_path):
    ids, vectors, _ = _sample()
    got_ids, got_vectors, got_meta = read_embeddings(
        write_embeddings(tmp_path / "a.parquet", ids, vectors)
    )
    assert got_ids == ids and got_vectors.shape == (5, 8) and got_meta.shape == (5, 0)
    empty = write_embeddings(tmp_path / "e.npy", [], np.zeros((0, 8), np.float32))
    got_ids, got_vectors, _ = read_embeddings(empty)
    assert got_ids == [] and got_vectors.shape == (0, 8)


def test_npy_reads_a_csv_sidecar_with_string_ids(tmp_path):
    vectors = np.eye(3, dtype=np.float32)
    np.save(tmp_path / "v.npy", vectors)
    pd.DataFrame({"id": ["007", "8", "NA"], "label": ["x", "y", "z"]}).to_csv(
        tmp_path / "v.ids.csv", index=False
    )
    ids, got, meta = read_embeddings(tmp_path / "v.npy")
    assert ids == ["007", "8", "NA"]  # kept as written: no int or NaN conversion
    np.testing.assert_array_equal(got, vectors)
    assert meta["label"].tolist() == ["x", "y", "z"]


def test_variable_length_list_column_is_read(tmp_path):
    table = pa.table({"id": ["a", "b"], "embedding": [[1.0, 2.0], [3.0, 4.0]]})
    pq.write_table(table, tmp_path / "v.parquet")
    ids, vectors, _ = read_embeddings(tmp_path / "v.parquet")
    assert ids == ["a", "b"] and vectors.tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.parquet", "not found"),
        (lambda d: d / "emb.txt", "unknown embeddings format"),
        (lambda d: _write(d / "x.parquet", pa.table({"id": ["a"]})), "no `embedding` column"),
        (
            lambda d: _write(
                d / "r.parquet", pa.table({"id": ["a", "b"], "embedding": [[1.0], [1.0, 2.0]]})
            ),
            "different widths",
        ),
        (
            lambda d: _write(d / "s.parquet", pa.table({"id": ["a"], "embedding": ["x"]})),
            "not a list of floats",
        ),
        (lambda d: _bytes(d / "bad.parquet", b"not parquet"), "cannot read as Parquet"),
        (lambda d: _npy(d / "lonely.npy", np.ones((2, 3))), "no ids table"),
        (lambda d: _npy(d / "flat.npy", np.ones(3)), "[N, D] matrix"),
    ],
)
def test_read_errors_name_the_problem(tmp_path, make, message):
    with pytest.raises(PlaitError) as info:
        read_embeddings(make(tmp_path))
    assert message in str(info.value)


def test_npy_with_a_mismatched_sidecar_is_refused(tmp_path):
    write_embeddings(tmp_path / "m.npy", ["a", "b"], np.ones((2, 3), np.float32))
    np.save(tmp_path / "m.npy", np.ones((3, 3), np.float32))
    with pytest.raises(PlaitError, match="3 vectors but its ids table has 2 rows"):
        read_embeddings(tmp_path / "m.npy")


def test_write_errors(tmp_path):
    ids, vectors, metadata = _sample()
    with pytest.raises(PlaitError, match="4 ids for 5 embeddings"):
        write_embeddings(tmp_path / "a.parquet", ids[:4], vectors)
    with pytest.raises(PlaitError, match="clash"):
        write_embeddings(
            tmp_path / "a.parquet", ids, vectors, metadata.rename(columns={"path": "id"})
        )
    with pytest.raises(PlaitError, match="metadata has 2 rows"):
        write_embeddings(tmp_path / "a.parquet", ids, vectors, metadata.head(2))
    with pytest.raises(PlaitError, match=r"\[N, D\]"):
        write_embeddings(tmp_path / "a.parquet", ids, vectors[0])
    assert not list(tmp_path.iterdir())


def test_embed_table_writes_unit_vectors_with_source_metadata(model, demo_data, tmp_path):
    path = embed_table(model, demo_data / "test.csv", "image", tmp_path / "images.parquet")
    ids, vectors, metadata = read_embeddings(path)
    want_ids, want = model.embed(demo_data / "test.csv", "image")
    assert ids == want_ids and len(ids) > 0
    np.testing.assert_allclose(vectors, want, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # the image path (absolute, so it opens from anywhere) and the label of each row
    assert list(metadata.columns) == ["image", "label"]
    source = pd.read_csv(demo_data / "test.csv").set_index("id")
    for row_id, image, label in zip(ids, metadata["image"], metadata["label"], strict=True):
        assert Path(image).is_absolute() and Path(image).is_file()
        assert Path(image) == (demo_data / source.loc[row_id, "image"]).resolve()
        assert label == source.loc[row_id, "label"]


def test_embed_table_by_kind_keeps_text_as_written(model, demo_data, tmp_path):
    path = embed_table(
        model, demo_data / "test.csv", "text", tmp_path / "captions.npy", batch_size=4
    )
    ids, vectors, metadata = read_embeddings(path)
    source = pd.read_csv(demo_data / "test.csv").set_index("id")
    assert vectors.shape == (len(ids), model.dim)
    assert metadata["caption"].tolist() == [source.loc[i, "caption"] for i in ids]


def test_embed_table_metadata_columns_and_errors(model, demo_data, tmp_path):
    path = embed_table(
        model, demo_data / "test.csv", "image", tmp_path / "x.parquet", metadata_columns=["audio"]
    )
    assert list(read_embeddings(path)[2].columns) == ["audio"]
    with pytest.raises(PlaitError, match="no column"):
        embed_table(
            model,
            demo_data / "test.csv",
            "image",
            tmp_path / "y.parquet",
            metadata_columns=["nope"],
        )
    with pytest.raises(PlaitError, match="no `audio` tower"):
        embed_table(model, demo_data / "test.csv", "audio", tmp_path / "z.parquet")
    with pytest.raises(PlaitError, match="unknown embeddings format"):
        embed_table(model, demo_data / "test.csv", "image", tmp_path / "z.csv")


def test_load_dispatches_and_the_api_embeds(model_dir, demo_data, tmp_path):
    ids, vectors = embed_api(model_dir, demo_data / "test.csv", "image", out=tmp_path / "e.parquet")
    assert vectors.shape == (len(ids), 16)
    assert read_embeddings(tmp_path / "e.parquet")[0] == ids
    with pytest.raises(PlaitError, match="aligned model"):
        predict_api(model_dir, demo_data / "test.csv")


def _write(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def test_embedding_skips_unreadable_rows_and_lists_them(
    model, hostile_table, hostile_rows, tmp_path
):
    """`embed` and `embed_table` skip (a vector cannot be empty) and list; the lower-level
    `embed_rows` behind `plait index build` refuses, having nowhere to list them."""
    from plait.retrieval.embed import embed_rows

    bad = sorted(r for r, (column, _) in hostile_rows.items() if column == "image")
    ids, vectors = model.embed(hostile_table, "image")
    assert model.last_bad_rows is not None and model.last_bad_rows.rows == bad
    source = pd.read_csv(hostile_table, dtype={"id": str})
    assert not set(ids) & {source["id"][r - 1] for r in bad}

    out = embed_table(model, hostile_table, "image", tmp_path / "emb.npy")
    assert read_embeddings(out)[0] == ids
    listed = pd.read_csv(tmp_path / "emb.bad_rows.csv")
    assert list(listed["row"]) == bad and set(listed["column"]) == {"image"}

    with pytest.raises(PlaitError, match=f"{len(bad)} of 25 row"):
        embed_rows(model, hostile_table, "image")
    with pytest.raises(PlaitError, match="row 2, column 'image'"):
        embed_api(model, hostile_table, "image", on_error="raise")
