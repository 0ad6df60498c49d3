"""Index a table with an aligned model, grow it, and search it from each of the model's towers.

The demo data's captions and images do not share content, so these tests check plumbing
(shapes, ids, files, errors, self-retrieval), not retrieval quality.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import plait
from plait.errors import PlaitError
from plait.retrieval.index import EmbeddingIndex
from plait.retrieval.search import add_to_index, build_index, contact_sheet, load_index, search


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("search-runs")


def _train(tiny_config, runs: Path, name: str, pair: list[str]) -> Path:
    from plait.api import train_run as fit
    from plait.config import PlaitConfig

    raw = tiny_config(runs, name=name, alignment={"dim": 16, "pair": pair})
    return fit(PlaitConfig.from_dict(raw)).model_dir


@pytest.fixture(scope="module")
def image_model(tiny_config, runs) -> Path:
    """caption <-> image, trained once for the module."""
    return _train(tiny_config, runs, "text-image", ["caption", "image"])


@pytest.fixture(scope="module")
def audio_model(tiny_config, runs) -> Path:
    """caption <-> audio, trained once for the module."""
    return _train(tiny_config, runs, "text-audio", ["caption", "audio"])


@pytest.fixture(scope="module")
def image_index(image_model, demo_data, runs) -> Path:
    """An index of the demo test images (read-only: copy it before adding)."""
    build_index(image_model, demo_data / "test.csv", "image", runs / "image-index")
    return runs / "image-index"


def _rows(demo_data: Path, column: str) -> pd.DataFrame:
    frame = pd.read_csv(demo_data / "test.csv")
    return frame[frame[column].notna()]


def _check_hits(hits: pd.DataFrame, k: int) -> None:
    assert list(hits.columns[:3]) == ["rank", "id", "score"]
    assert hits["rank"].tolist() == list(range(1, k + 1))
    scores = hits["score"].to_numpy()
    assert (np.diff(scores) <= 1e-6).all()  # best first
    assert ((scores >= -1.0001) & (scores <= 1.0001)).all()  # cosines


def test_build_records_the_model_and_absolute_metadata(image_index, image_model, demo_data):
    index = load_index(image_index)
    rows = _rows(demo_data, "image")
    assert len(index) == len(rows) and index.dim == 16 and index.kind == "exact"
    assert sorted(index.ids) == sorted(rows["id"])
    assert index.info == {
        "model": str(image_model.resolve()),
        "modality": "image",
        "kind": "image",
        "column": "image",
        "base_dir": str(demo_data.resolve()),
        "shown": ["image", "label"],  # what hits show by default
    }
    metadata = index.metadata
    assert list(metadata.columns) == ["image", "label", "caption", "audio"]  # every column
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in metadata["image"])


def test_text_query_on_an_image_index(image_index):
    hits = search(image_index, text="a dog near the river", k=5)
    _check_hits(hits, 5)
    assert {"image", "label"} <= set(hits.columns)
    assert hits.attrs["query_kind"] == "text" and hits.attrs["kind"] == "image"


def test_image_query_finds_itself_first(image_index, demo_data):
    for _, row in _rows(demo_data, "image").head(3).iterrows():
        hits = search(image_index, image=demo_data / row["image"], k=3)
        _check_hits(hits, 3)
        assert hits["id"].iloc[0] == row["id"]
        assert hits["score"].iloc[0] == pytest.approx(1.0, abs=1e-4)


def test_k_larger_than_the_index_returns_every_item(image_index):
    hits = search(image_index, text="anything", k=1000)
    assert len(hits) == len(load_index(image_index))


def test_audio_index_searched_by_audio_and_by_text(audio_model, demo_data, runs):
    folder = runs / "audio-index"
    index = build_index(audio_model, demo_data / "test.csv", "audio", folder)
    assert index.info["kind"] == "audio" and len(index) == len(_rows(demo_data, "audio"))
    row = _rows(demo_data, "audio").iloc[0]
    hits = plait.search(folder, audio=demo_data / row["audio"], k=4)
    _check_hits(hits, 4)
    assert hits["id"].iloc[0] == row["id"]
    _check_hits(search(folder, text="birds at dawn", k=4), 4)
    with pytest.raises(PlaitError, match="aligns text and audio; it cannot embed image queries"):
        search(folder, image=demo_data / "images" / "demo-00050.png")


def test_a_caption_index_is_searched_by_image(image_model, demo_data, runs):
    folder = runs / "caption-index"
    build_index(image_model, demo_data / "test.csv", "text", folder)
    row = _rows(demo_data, "image").iloc[0]
    hits = search(folder, image=demo_data / row["image"], k=3)
    _check_hits(hits, 3)
    assert "caption" in hits.columns


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"audio": "clip.wav"}, "this index's model aligns text and image; it cannot embed audio"),
        ({"text": "  "}, "empty text query"),
        ({"image": "no/such/file.png"}, "image query file not found: no/such/file.png"),
        ({}, "give exactly one query"),
        ({"text": "a", "image": "b.png"}, "give exactly one query"),
        ({"text": "a", "k": 0}, "k must be at least 1"),
    ],
)
def test_bad_queries_are_refused(image_index, query, message):
    with pytest.raises(PlaitError) as info:
        search(image_index, **query)
    assert message in str(info.value)


def test_add_grows_the_index_and_refuses_ids_already_there(
    image_index, image_model, demo_data, tmp_path
):
    folder = tmp_path / "grown"
    build_index(image_model, demo_data / "test.csv", "image", folder)
    before = len(load_index(folder))
    grown = add_to_index(folder, demo_data / "train.csv")
    train = pd.read_csv(demo_data / "train.csv")
    added = int(train["image"].notna().sum())
    assert len(grown) == before + added
    reloaded = load_index(folder)  # saved
    assert len(reloaded) == before + added and reloaded.info == load_index(image_index).info
    row = train[train["image"].notna()].iloc[0]
    assert search(folder, image=demo_data / row["image"], k=1)["id"].iloc[0] == row["id"]
    with pytest.raises(PlaitError, match="already in the index"):
        add_to_index(folder, demo_data / "train.csv")
    assert len(load_index(folder)) == before + added  # nothing changed


def test_model_argument_and_indexes_without_a_model(image_model, demo_data, tmp_path):
    predictor = plait.load(image_model)
    index = build_index(predictor, demo_data / "test.csv", "image", tmp_path / "idx")
    assert index.info["model"] is None
    with pytest.raises(PlaitError, match="records no model"):
        search(tmp_path / "idx", text="a cat")
    assert len(search(index, text="a cat", k=2, model=predictor)) == 2
    assert isinstance(load_index(tmp_path / "idx"), EmbeddingIndex)


def test_missing_index_model_and_wrong_model(image_index, audio_model, tmp_path):
    with pytest.raises(PlaitError, match="no index here"):
        search(tmp_path / "nothing", text="a")
    with pytest.raises(PlaitError, match="model folder not found"):
        search(image_index, text="a", model=tmp_path / "gone")
    # another model of the same width embeds text, but cannot embed images
    with pytest.raises(PlaitError, match="cannot embed image queries"):
        search(image_index, image=tmp_path / "x.png", model=audio_model)


def test_contact_sheet_embeds_each_hit_as_a_base64_thumbnail(image_index, tmp_path):
    hits = search(image_index, text="a red kite", k=4)
    page = contact_sheet(hits, tmp_path / "sheet.html", "a red kite", "image")
    html = page.read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(images) == 4
    thumb = Image.open(io.BytesIO(base64.b64decode(images[0])))
    assert max(thumb.size) <= 160
    assert "a red kite" in html and "#1" in html and hits["id"].iloc[0] in html
    assert f"{hits['score'].iloc[0]:.4f}" in html
    assert "src='http" not in html and "<script" not in html  # self-contained
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.html"]  # written atomically


def test_contact_sheet_handles_array_cells_and_unreadable_images(tmp_path):
    np.save(
        tmp_path / "digits.npy", np.random.default_rng(0).integers(0, 255, (2, 28, 28), np.uint8)
    )
    hits = pd.DataFrame(
        {
            "rank": [1, 2, 3],
            "id": ["a", "b", "<c>"],
            "score": [0.9, 0.5, 0.1],
            "image": [f"{tmp_path / 'digits.npy'}#1", str(tmp_path / "gone.png"), None],
        }
    )
    html = contact_sheet(hits, tmp_path / "s.html", "q", "image").read_text()
    assert html.count("data:image/png;base64,") == 1
    assert "cannot read" in html and "no image" in html and "&lt;c&gt;" in html
    with pytest.raises(PlaitError, match="no `path` column"):
        contact_sheet(hits, tmp_path / "t.html", "q", "path")


# ----------------------------------------------------------------------------- issue 13
def _image_array(demo_data: Path, tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """The first four demo test images as rows of one uint8 array file [4, H, W, 3]."""
    rows = _rows(demo_data, "image").head(4).reset_index(drop=True)
    pictures = [np.asarray(Image.open(demo_data / p).convert("RGB")) for p in rows["image"]]
    path = tmp_path / "images.npy"
    np.save(path, np.stack(pictures))
    return path, rows


def test_array_cell_queries_embed_as_that_row_of_a_table(image_model, demo_data, tmp_path):
    from plait.retrieval.search import embed_query

    array, _ = _image_array(demo_data, tmp_path)
    pd.DataFrame({"id": ["r0", "r1", "r2"], "image": [f"images.npy#{i}" for i in range(3)]}).to_csv(
        tmp_path / "cells.csv", index=False
    )
    model = plait.load(image_model)
    ids, table_vectors = model.embed(tmp_path / "cells.csv", "image")
    assert ids == ["r0", "r1", "r2"]
    for row in range(3):
        for query in (f"{array}#{row}", Path(f"{array}#{row}")):  # as the CLI passes it
            vector = embed_query(model, "image", query)
            np.testing.assert_allclose(vector[0], table_vectors[row], atol=1e-5)
    with pytest.raises(PlaitError, match="row 9 is out of range"):
        embed_query(model, "image", f"{array}#9")


def test_an_array_cell_image_query_finds_its_picture_first(image_index, demo_data, tmp_path):
    array, rows = _image_array(demo_data, tmp_path)
    hits = search(image_index, image=Path(f"{array}#2"), k=2)
    assert hits["id"].iloc[0] == rows["id"].iloc[2]
    assert hits["score"].iloc[0] == pytest.approx(1.0, abs=1e-4)
    assert hits.attrs["query"] == f"{array}#2"


def test_audio_array_cell_queries_embed_as_that_row_of_a_table(audio_model, tmp_path):
    from plait.retrieval.search import embed_query

    waves = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 4000)).astype(np.float32)
    np.save(tmp_path / "waves.npy", waves)
    pd.DataFrame({"id": ["w0", "w1", "w2"], "audio": [f"waves.npy#{i}" for i in range(3)]}).to_csv(
        tmp_path / "cells.csv", index=False
    )
    model = plait.load(audio_model)
    _, table_vectors = model.embed(tmp_path / "cells.csv", "audio")
    vector = embed_query(model, "audio", Path(tmp_path / "waves.npy#2"))
    np.testing.assert_allclose(vector[0], table_vectors[2], atol=1e-5)


def test_an_index_keeps_every_column_and_hits_show_the_chosen_ones(
    image_model, demo_data, tmp_path
):
    table = pd.read_csv(demo_data / "test.csv")
    table["image"] = [str(demo_data / p) if isinstance(p, str) else p for p in table["image"]]
    table["name"] = [f"item, number {i}" for i in range(len(table))]
    table["mixed"] = [1 if i % 2 else "one" for i in range(len(table))]  # Parquet cannot
    table.to_csv(tmp_path / "named.csv", index=False)
    index = build_index(image_model, tmp_path / "named.csv", "image", tmp_path / "idx")
    assert list(index.metadata.columns) == ["image", "label", "caption", "audio", "name", "mixed"]
    assert index.info["shown"] == ["image", "label"]
    default = search(tmp_path / "idx", text="a dog", k=3)
    assert list(default.columns) == ["rank", "id", "score", "image", "label"]
    chosen = search(tmp_path / "idx", text="a dog", k=3, show=["name", "caption"])
    assert list(chosen.columns) == ["rank", "id", "score", "name", "caption"]
    names = dict(zip(table["id"], table["name"], strict=True))
    assert chosen["name"].tolist() == [names[i] for i in chosen["id"]]
    with pytest.raises(PlaitError, match=r"keeps no column\(s\) \['title'\]"):
        search(tmp_path / "idx", text="a dog", show=["title"])
    both = chosen.assign(image=default["image"])  # the same query: the same hits
    html = contact_sheet(both, tmp_path / "s.html", "q", "image", show=["name"]).read_text()
    assert all(f"name: {names[i]}" in html for i in chosen["id"]) and "caption: " not in html


def test_a_zeroshot_over_hundreds_of_classes_warns_nothing(image_model, demo_data):
    import warnings

    model = plait.load(image_model)
    labels = sorted(_rows(demo_data, "image")["label"].unique())
    classes = [*labels, *(f"class {i}, a name with a comma" for i in range(200))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.zeroshot(demo_data / "test.csv", classes, templates=["{}"])
    assert [str(w.message) for w in caught] == []
    scores = [c for c in result.predictions.columns if c.startswith("score_")]
    assert scores == [f"score_{c}" for c in classes]
    assert set(result.predictions["prediction"].dropna()) <= set(classes)
    assert result.metrics is not None and result.metrics["unknown_labels"] == 0
