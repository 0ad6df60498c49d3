"""embed / similarity / zero-shot / search / media of a served aligned model, compared
with the same model in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from plait.serve import ServeSettings, create_app

from .conftest import b64, png_bytes


@pytest.fixture(scope="module")
def index(aligned_folder: Path, serve_data: Path, tmp_path_factory):
    from plait.retrieval.search import build_index

    return build_index(
        aligned_folder, serve_data / "test.csv", "image", tmp_path_factory.mktemp("ix") / "ix"
    )


@pytest.fixture(scope="module")
def client(aligned, index):
    with TestClient(create_app(aligned, ServeSettings(), index)) as c:
        yield c


def test_card_lists_the_aligned_endpoints(client):
    card = client.get("/v1/card").json()
    assert card["task"] == "alignment" and card["pair"] == ["caption", "image"]
    assert card["index"] is True and card["labels"] is not None
    for path in ("/v1/embed", "/v1/similarity", "/v1/zeroshot", "/v1/search"):
        assert path in card["endpoints"]
    assert "/v1/predict" not in card["endpoints"]
    assert client.post("/v1/predict", json={"rows": [{"caption": "x"}]}).status_code == 404


def test_embed_matches_in_process_vectors(client, aligned):
    image = png_bytes(seed=3)
    out = client.post(
        "/v1/embed",
        json={"rows": [{"caption": "a red circle", "image": b64(image)}, {"image": b64(b"x")}]},
    ).json()["rows"]
    expected = aligned.embed_values("caption", ["a red circle"])[0]
    got = np.array(out[0]["embeddings"]["caption"])
    assert np.allclose(got, expected, atol=1e-5)
    assert abs(np.linalg.norm(np.array(out[0]["embeddings"]["image"])) - 1) < 1e-4
    assert out[1]["embeddings"] is None and out[1]["error_code"] == "unsupported_media_type"


def test_similarity_json_and_multipart_agree(client, aligned, tmp_path: Path):
    image = png_bytes(seed=4)
    texts = ["a red circle", "a blue square"]
    json_scores = client.post(
        "/v1/similarity", json={"query": b64(image), "candidates": texts}
    ).json()
    form = client.post(
        "/v1/similarity",
        files={"file": ("q.png", image, "image/png")},
        data={"text": texts},
    ).json()
    (tmp_path / "q.png").write_bytes(image)
    expected = aligned.similarity(image=[str(tmp_path / "q.png")], text=texts).to_numpy()[0]
    assert np.allclose(json_scores["scores"], expected, atol=1e-5)
    assert np.allclose(form["scores"], expected, atol=1e-5)
    assert (
        json_scores["query_modality"] == "image" and json_scores["candidate_modality"] == "caption"
    )


def test_zeroshot_probabilities_sum_to_one(client):
    out = client.post(
        "/v1/zeroshot", json={"query": b64(png_bytes(seed=5)), "classes": ["circle", "square"]}
    )
    assert out.status_code == 200, out.text
    probs = out.json()["probabilities"]
    assert set(probs) == {"circle", "square"} and abs(sum(probs.values()) - 1) < 1e-5
    bad = client.post("/v1/zeroshot", json={"query": b64(png_bytes()), "classes": ["one"]})
    assert bad.status_code == 422


def test_search_hits_and_media_come_from_the_index(client, aligned, index, serve_data: Path):
    answer = client.post("/v1/search", json={"query": {"caption": "a red circle"}, "k": 3})
    assert answer.status_code == 200, answer.text
    hits = answer.json()["hits"]
    vector = aligned.embed_values("caption", ["a red circle"])
    expected = index.search(vector, 3)[0]
    assert [h["id"] for h in hits] == expected.ids
    assert hits[0]["rank"] == 1 and "image" in hits[0]["columns"]
    media = client.get(hits[0]["media_url"])
    assert media.status_code == 200 and media.headers["content-type"] == "image/png"
    assert media.content == Path(hits[0]["columns"]["image"]).read_bytes()
    assert client.get("/v1/items/..%2F..%2Fetc%2Fpasswd/media").status_code == 404
    form = client.post("/v1/search", data={"caption": "a red circle", "k": "3"}).json()
    assert [h["id"] for h in form["hits"]] == expected.ids
    assert client.post("/v1/search", json={"query": {"caption": "x"}, "k": 0}).status_code == 422


def test_index_of_another_width_is_refused(aligned, index):
    from plait.errors import PlaitError

    with pytest.raises(PlaitError, match="dimensional"):
        create_app(aligned, ServeSettings(), _with_dim(index, index.dim + 1))


def _with_dim(index, dim):
    import copy

    other = copy.copy(index)
    other.dim = dim
    return other


def test_search_needs_an_index(aligned):
    with TestClient(create_app(aligned)) as c:
        assert c.post("/v1/search", json={"query": {"caption": "x"}}).status_code == 404
