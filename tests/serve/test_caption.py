"""`plait serve CAPTIONER`: POST /v1/caption (JSON or multipart, several files, bounded
decoding options) answers what `model.caption` gives; /v1/predict points there."""

from __future__ import annotations

import base64
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import plait
from plait.serve import ServeSettings, create_app
from plait.serve.loading import load_for_serving

from .conftest import b64, png_bytes, wav_bytes


@pytest.fixture(scope="module")
def captioner(tiny_captioner: Path):
    return plait.load(tiny_captioner)


@pytest.fixture(scope="module")
def client(captioner):
    with TestClient(create_app(captioner)) as c:
        yield c


@pytest.fixture(scope="module")
def pictures(captioner) -> list[Path]:
    table = Path(captioner.config.data.test)
    frame = pd.read_csv(table)
    return [table.parent / p for p in frame["image"].head(3)]


def _expected(captioner, files: list[Path], **options) -> list[str]:
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(files))],
                          "image": [str(f) for f in files]})  # fmt: skip
    return captioner.caption(frame, progress=False, **options)["caption"].tolist()


def test_card_says_captioner_and_predict_points_at_caption(client):
    card = client.get("/v1/card").json()
    assert card["task"] == "captioning" and [m["name"] for m in card["modalities"]] == ["image"]
    assert card["captioning"]["source"] == "image" and card["captioning"]["caption"] == "caption"
    assert card["captioning"]["decoder"] == "transformer"
    assert card["captioning"]["defaults"]["max_length"] == 8
    assert card["captioning"]["max_length"] == 25  # the decoder's positions, less the start
    assert "/v1/caption" in card["endpoints"] and "/v1/predict" not in card["endpoints"]
    wrong = client.post("/v1/predict", json={"rows": [{"image": b64(png_bytes())}]})
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "captioning_model"
    assert "/v1/caption" in wrong.json()["error"]["message"]
    schema = client.get("/openapi.json").json()
    assert "/v1/caption" in schema["paths"] and "/v1/predict" not in schema["paths"]
    assert "CaptionOptions" in str(schema["paths"]["/v1/caption"]["post"]["requestBody"])


def test_json_rows_get_the_model_captions_and_a_bad_row_its_error(client, captioner, pictures):
    rows = [{"image": b64(p.read_bytes(), p.name)} for p in pictures]
    rows += [{"image": b64(b"not a picture")}, {}, {"image": None}]
    answer = client.post("/v1/caption", json={"rows": rows, "options": {"num_beams": 2}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    got = [r["caption"] for r in body["rows"][:3]]
    assert got == _expected(captioner, pictures, num_beams=2)
    codes = [r.get("error_code") for r in body["rows"][3:]]
    assert codes == ["unsupported_media_type", "missing_input", "missing_input"]
    assert all(r["caption"] is None for r in body["rows"][3:])
    empty = client.post("/v1/caption", json={"rows": [{}]})
    assert empty.status_code == 422 and "upload the file to caption" in empty.text
    assert body["decoding"]["num_beams"] == 2 and body["decoding"]["max_length"] == 8


def test_multipart_takes_several_files_and_options_as_fields(client, captioner, pictures):
    files = [("image", (p.name, p.read_bytes(), "image/png")) for p in pictures[:2]]
    data = {"max_length": "3", "no_repeat_ngram_size": "1"}
    answer = client.post("/v1/caption", files=files, data=data)
    assert answer.status_code == 200, answer.text
    got = [r["caption"] for r in answer.json()["rows"]]
    assert got == _expected(captioner, pictures[:2], max_length=3, no_repeat_ngram_size=1)
    sampled = {"do_sample": "true", "top_p": "0.9", "temperature": "0.7", "seed": "3"}
    first = client.post("/v1/caption", files=files[:1], data=sampled).json()["rows"]
    again = client.post("/v1/caption", files=files[:1], data=sampled).json()["rows"]
    assert first == again and first[0]["caption"] is not None


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"options": {"num_beams": 0}}, 422, "num_beams"),
        ({"options": {"top_p": 1.5}}, 422, "top_p"),
        ({"options": {"max_length": 26}}, 422, "at most 25"),
        ({"options": {"beams": 2}}, 422, "beams"),
        ({"options": {"do_sample": True, "num_beams": 2}}, 422, "sampling with beams"),
        ({"rows": [{"caption": {"base64": ""}}]}, 422, "no modality named 'caption'"),
        ({"rows": [{"image": {"base64": "QQ=="}}] * 65}, 413, "at most 64"),
    ],
)
def test_bad_requests_say_what_is_wrong(client, body, status, words):
    request = {"rows": [{"image": b64(png_bytes())}], **body}
    answer = client.post("/v1/caption", json=request)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]["message"]


def test_api_key_and_body_limit_hold_for_caption(captioner):
    settings = ServeSettings(api_key="s3cret", max_body_bytes=4096)
    with TestClient(create_app(captioner, settings)) as c:
        row = {"rows": [{"image": b64(png_bytes(16, 16))}]}
        assert c.post("/v1/caption", json=row).status_code == 401
        key = {"Authorization": "Bearer s3cret"}
        assert c.post("/v1/caption", json=row, headers=key).status_code == 200
        big = {"rows": [{"image": {"base64": base64.b64encode(b"x" * 8000).decode()}}]}
        assert c.post("/v1/caption", json=big, headers=key).status_code == 413


def test_the_onnx_export_serves_the_same_captions(tiny_captioner, captioner, pictures, tmp_path):
    from plait.export import export

    export(tiny_captioner, tmp_path / "onnx")
    predictor, _ = load_for_serving(tmp_path / "onnx", None, "onnx")
    rows = [{"image": b64(p.read_bytes())} for p in pictures]
    with TestClient(create_app(predictor, ServeSettings(runtime="onnx"))) as c:
        assert c.get("/v1/card").json()["runtime"] == "onnx"
        got = c.post("/v1/caption", json={"rows": rows}).json()["rows"]
    assert [r["caption"] for r in got] == _expected(captioner, pictures)


def test_a_sound_captioner_captions_uploaded_wavs_within_the_audio_limit(tmp_path: Path):
    from plait.config import PlaitConfig
    from plait.data import prepare_data
    from plait.datasets.tone_captions import generate_tone_captions
    from plait.tasks import task_of

    tones = tmp_path / "tones"
    generate_tone_captions(tones, n_train=8, n_valid=2, n_test=2, n_heldout=0, seed=0)
    raw = {
        "name": "tones",
        "output_dir": str(tmp_path / "runs"),
        "data": {"train": str(tones / "train.csv"), "id": "id"},
        "modalities": {
            "audio": {
                "kind": "audio",
                "column": "audio",
                "n_mels": 16,
                "n_fft": 256,
                "hop_length": 160,
                "encoder": {"type": "audio_cnn", "dim": 16},
            },
            "caption": {"kind": "text", "column": "caption", "encoder": {"type": "text_cnn"}},
        },  # fmt: skip
        "captioning": {"dim": 16, "heads": 2, "layers": 1, "max_length": 6},
    }
    config = PlaitConfig.from_dict(raw)
    data = prepare_data(config, progress=False)
    task = task_of(config)
    model = task.build(config, data.processors, data.labels).eval()
    predictor = task.predictor_of(model, config, data.processors, data.labels)
    sounds = [tones / p for p in pd.read_csv(tones / "test.csv")["audio"]]
    limit = ServeSettings(max_audio_seconds=30)
    with TestClient(create_app(predictor, limit)) as c:
        assert c.get("/v1/card").json()["captioning"]["source"] == "audio"
        files = [("audio", (p.name, p.read_bytes(), "audio/wav")) for p in sounds]
        got = c.post("/v1/caption", files=files).json()["rows"]
        too_long = wav_bytes(seconds=31)
        refused = c.post("/v1/caption", files=[("audio", ("long.wav", too_long, "audio/wav"))])
    frame = pd.DataFrame({"id": ["a", "b"], "audio": [str(p) for p in sounds]})
    assert [r["caption"] for r in got] == predictor.caption(frame, progress=False)[
        "caption"
    ].tolist()
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "audio_too_long"
