"""`--runtime onnx`: an ONNX export (plait.export) served with the same answers as the
PyTorch model it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from plait.serve import ServeSettings, create_app
from plait.serve.loading import load_for_serving

from .conftest import b64, png_bytes, wav_bytes

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def classifier_export(classifier_folder: Path, serve_data: Path, tmp_path_factory) -> Path:
    from plait.export import export

    out = tmp_path_factory.mktemp("onnx") / "clf-onnx"
    export(classifier_folder, out, data=serve_data / "test.csv")
    return out


@pytest.fixture(scope="module")
def aligned_export(aligned_folder: Path, serve_data: Path, tmp_path_factory) -> Path:
    from plait.export import export

    out = tmp_path_factory.mktemp("onnx") / "aligned-onnx"
    export(aligned_folder, out, data=serve_data / "test.csv")
    return out


ROWS = [
    {"caption": "a red circle", "image": b64(png_bytes(seed=1)), "audio": b64(wav_bytes(seed=1))},
    {"caption": "only text"},
    {"image": b64(png_bytes(seed=2))},
]


def test_onnx_predictions_match_the_pytorch_service(classifier, classifier_export: Path):
    predictor, _ = load_for_serving(classifier_export, None, "onnx")
    settings = ServeSettings(runtime="onnx")
    with (
        TestClient(create_app(predictor, settings)) as onnx,
        TestClient(create_app(classifier)) as torch_,
    ):
        card = onnx.get("/v1/card").json()
        assert card["runtime"] == "onnx" and "/v1/predict" in card["endpoints"]
        assert "/v1/explain" in card["endpoints"]  # attribution runs on ONNX Runtime too
        got = onnx.post("/v1/predict", json={"rows": ROWS}).json()["rows"]
        want = torch_.post("/v1/predict", json={"rows": ROWS}).json()["rows"]
        got_explained = onnx.post("/v1/explain", json={"rows": ROWS}).json()["rows"]
        want_explained = torch_.post("/v1/explain", json={"rows": ROWS}).json()["rows"]
    for g, w in zip(got, want, strict=True):
        assert g["error"] is None and g["prediction"] == w["prediction"]
        for name, p in w["probabilities"].items():
            assert g["probabilities"][name] == pytest.approx(p, abs=1e-4)
    for g, w in zip(got_explained, want_explained, strict=True):
        assert g["error"] is None and set(g["attribution"]) == set(w["attribution"])
        for name, value in w["attribution"].items():
            assert g["attribution"][name] == pytest.approx(value, abs=1e-4)


def test_onnx_embeddings_match_the_pytorch_service(aligned, aligned_export: Path):
    predictor, _ = load_for_serving(aligned_export, None, "onnx")
    rows = [{"caption": "a red circle", "image": b64(png_bytes(seed=3))}]
    with (
        TestClient(create_app(predictor, ServeSettings(runtime="onnx"))) as onnx,
        TestClient(create_app(aligned)) as torch_,
    ):
        got = onnx.post("/v1/embed", json={"rows": rows}).json()["rows"][0]["embeddings"]
        want = torch_.post("/v1/embed", json={"rows": rows}).json()["rows"][0]["embeddings"]
        zs = onnx.post(
            "/v1/zeroshot", json={"query": b64(png_bytes()), "classes": ["circle", "square"]}
        )
    for name in ("caption", "image"):
        assert np.allclose(got[name], want[name], atol=1e-4)
    assert zs.status_code == 200, zs.text
