"""predict / explain / card / health / metrics of a served classifier, through
FastAPI's TestClient, compared with the same model's in-process `predict()`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from plait.serve import ServeSettings, create_app

from .conftest import b64, png_bytes, wav_bytes


@pytest.fixture(scope="module")
def client(classifier):
    with TestClient(create_app(classifier, ServeSettings())) as c:
        yield c


def test_health_card_and_docs(client, classifier):
    assert client.get("/v1/health/live").json() == {"status": "ok"}
    assert client.get("/v1/health/ready").json() == {"status": "ready"}
    card = client.get("/v1/card").json()
    assert card["task"] == "classification" and card["runtime"] == "torch"
    assert card["labels"] == [str(n) for n in classifier.labels.names]
    assert [m["name"] for m in card["modalities"]] == ["caption", "image", "audio"]
    assert "/v1/predict" in card["endpoints"] and "/v1/embed" not in card["endpoints"]
    assert card["limits"]["max_image_pixels"] == ServeSettings().max_image_pixels
    assert client.get("/openapi.json").json()["paths"]["/v1/predict"]
    assert client.get("/docs").status_code == 200


def test_not_ready_before_startup(classifier):
    client = TestClient(create_app(classifier))  # no `with`: the lifespan never ran
    assert client.get("/v1/health/ready").status_code == 503


def test_multipart_row_matches_in_process_predict(client, classifier, serve_data: Path):
    table = pd.read_csv(serve_data / "test.csv")
    row = table.dropna(subset=["caption", "image", "audio"]).iloc[0]
    files = {
        "image": ("x.png", Path(row["image"]).read_bytes(), "image/png"),
        "audio": ("x.wav", Path(row["audio"]).read_bytes(), "audio/wav"),
    }
    answer = client.post("/v1/predict", data={"caption": row["caption"]}, files=files)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == answer.json()["request_id"]
    (got,) = answer.json()["rows"]
    frame = pd.DataFrame([row[["id", "caption", "image", "audio"]].to_dict()])
    expected = classifier.predict(frame).iloc[0]
    assert got["error"] is None and got["prediction"] == expected["prediction"]
    for name, p in got["probabilities"].items():
        assert p == pytest.approx(float(expected[f"proba_{name}"]), abs=1e-5)


def test_json_rows_each_get_a_result_or_their_own_error(client):
    rows = [
        {"caption": "a red circle", "image": b64(png_bytes()), "audio": b64(wav_bytes())},
        {"caption": "only text"},
        {"caption": "broken", "image": b64(png_bytes()[:60])},  # truncated PNG
        {"image": b64(b"plain text, not an image")},
    ]
    answer = client.post("/v1/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    out = answer.json()["rows"]
    assert [r["index"] for r in out] == [0, 1, 2, 3]
    assert out[0]["error"] is None and out[1]["error"] is None
    assert abs(sum(out[0]["probabilities"].values()) - 1) < 1e-4
    assert out[2]["prediction"] is None and "image" in out[2]["error"]
    assert "/tmp" not in out[2]["error"]  # temp paths are never shown
    assert out[3]["error_code"] == "unsupported_media_type"


def test_a_request_whose_every_row_fails_is_a_4xx_with_the_rows(client):
    answer = client.post("/v1/predict", json={"rows": [{"image": b64(png_bytes()[:60])}]})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"]["code"] == "unreadable_input" and body["rows"][0]["error"]


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"rows": []}, 422, "no_rows"),
        ({"rows": [{"colour": "red"}]}, 422, "unknown_field"),
        ({"row": [{"caption": "x"}]}, 422, "invalid_request"),
        ({"rows": [{"image": "/etc/passwd"}]}, 422, "file_expected"),
        ({"rows": [{"image": {"base64": "%%%"}}]}, 422, "invalid_base64"),
    ],
)
def test_malformed_requests_are_4xx(client, body, status, code):
    answer = client.post("/v1/predict", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


def test_bad_json_and_wrong_media_type(client):
    bad = client.post(
        "/v1/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    text = client.post("/v1/predict", content=b"caption=x", headers={"content-type": "text/plain"})
    assert text.status_code == 415


def test_explain_adds_each_modalitys_contribution(client):
    rows = [{"caption": "a red circle", "image": b64(png_bytes())}, {"image": b64(b"nope")}]
    out = client.post("/v1/explain", json={"rows": rows}).json()["rows"]
    attribution = out[0]["attribution"]
    assert set(attribution) == {"caption", "image", "audio"}
    assert attribution["audio"] == 0.0  # a modality the row lacks contributes exactly 0
    full = out[0]["probabilities"][out[0]["attribution_target"]]
    assert sum(attribution.values()) == pytest.approx(
        full - out[0]["attribution_baseline"], abs=1e-5
    )
    assert out[1]["attribution"] is None and out[1]["error"]


def test_metrics_count_requests_and_batches(client):
    client.post("/v1/predict", json={"rows": [{"caption": "x"}]})
    text = client.get("/metrics").text
    assert 'plait_requests_total{endpoint="/v1/predict",method="POST",status="200"}' in text
    assert "plait_request_seconds_bucket" in text
    assert "plait_requests_in_flight" in text
    assert 'plait_batch_rows_count{endpoint="/v1/predict"}' in text


def test_unknown_route_is_a_json_404(client):
    answer = client.get("/v1/nothing")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_the_page_is_served_at_the_root_when_the_package_ships_it(client):
    from plait.serve.app import STATIC

    answer = client.get("/")
    if (STATIC / "index.html").is_file():
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    else:
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "no_page"
