"""`plait serve QUESTION-ANSWERER`: POST /v1/ask (JSON or multipart, several rows, a
bounded top k) answers what `model.ask` gives; /v1/predict points there."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from tests.vqa.conftest import vqa_config

import plait
from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.datasets.reasoning import generate_reasoning
from plait.serve import ServeSettings, create_app
from plait.serve.asks import MAX_QUESTION_CHARS
from plait.tasks import task_of

from .conftest import b64, png_bytes


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ask-scenes")
    generate_reasoning(root, n_train=6, n_valid=1, n_test=1, seed=0, questions=6)
    return root


@pytest.fixture(scope="module")
def answerer(scenes: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tiny untrained question answerer, saved and loaded back as `plait serve` does."""
    out = tmp_path_factory.mktemp("ask-model")
    raw = vqa_config(scenes, out)
    torch.manual_seed(0)
    config = PlaitConfig.from_dict(raw)
    task = task_of(config)
    data = prepare_data(config, progress=False)
    model = task.build(config, data.processors, data.labels)
    predictor = task.predictor_of(model, config, data.processors, data.labels)
    return plait.load(predictor.save(out / "model"))


@pytest.fixture(scope="module")
def client(answerer):
    with TestClient(create_app(answerer)) as c:
        yield c


@pytest.fixture(scope="module")
def asked(scenes: Path) -> pd.DataFrame:
    """Three (picture path, question) rows of the test split."""
    frame = pd.read_csv(scenes / "test.csv", dtype=str).head(3)
    frame["image"] = [str(scenes / p) for p in frame["image"]]
    return frame[["image", "question"]].reset_index(drop=True)


def _expected(answerer, asked: pd.DataFrame, top_k: int = 1) -> pd.DataFrame:
    return answerer.ask(asked.assign(id=[f"r{i}" for i in range(len(asked))]), top_k=top_k)


def test_card_says_vqa_and_predict_points_at_ask(client, answerer):
    card = client.get("/v1/card").json()
    assert card["task"] == "vqa"
    assert [m["name"] for m in card["modalities"]] == ["image", "question"]
    vqa = card["vqa"]
    assert vqa["answers"] == len(answerer.answers) > 2
    assert (vqa["context"], vqa["context_kind"], vqa["question_column"]) == (
        "image", "image", "question")  # fmt: skip
    assert (vqa["max_question_chars"], vqa["max_top_k"]) == (MAX_QUESTION_CHARS, 50)
    assert "/v1/ask" in card["endpoints"] and "/v1/predict" not in card["endpoints"]
    assert "/v1/explain" not in card["endpoints"]
    wrong = client.post("/v1/predict", json={"rows": [{"image": b64(png_bytes())}]})
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "vqa_model"
    assert "/v1/ask" in wrong.json()["error"]["message"]
    schema = client.get("/openapi.json").json()
    assert "/v1/ask" in schema["paths"] and "/v1/predict" not in schema["paths"]
    assert "top_k" in str(schema["paths"]["/v1/ask"]["post"]["requestBody"])
    assert "AskRow" in schema["components"]["schemas"]


def test_json_rows_get_the_model_answers_and_a_bad_row_its_error(client, answerer, asked):
    rows: list[dict] = [
        {"image": b64(Path(p).read_bytes(), Path(p).name), "question": q}
        for p, q in zip(asked["image"], asked["question"], strict=True)
    ]
    picture = rows[0]["image"]
    rows += [
        {"image": b64(b"not a picture"), "question": "what?"},
        {"question": "what shape is it?"},
        {"image": picture},
        {"image": picture, "question": "  "},
        {"image": picture, "question": "x" * (MAX_QUESTION_CHARS + 1)},
    ]
    answer = client.post("/v1/ask", json={"rows": rows, "top_k": 3})
    assert answer.status_code == 200, answer.text
    got = answer.json()["rows"]
    expected = _expected(answerer, asked, top_k=3)
    for row, (_, want) in zip(got[:3], expected.iterrows(), strict=True):
        assert row["answer"] == want["answer"] and row["error"] is None
        assert row["probability"] == pytest.approx(want["probability"], abs=1e-6)
        assert [r["answer"] for r in row["top_k"]] == [
            want["answer"], want["answer_2"], want["answer_3"]]  # fmt: skip
        probabilities = [r["probability"] for r in row["top_k"]]
        assert probabilities == sorted(probabilities, reverse=True)
    codes = [r.get("error_code") for r in got[3:]]
    assert codes == ["unsupported_media_type", "missing_input", "missing_input",
                     "missing_input", "text_too_long"]  # fmt: skip
    assert all(r["answer"] is None and r["top_k"] is None for r in got[3:])
    empty = client.post("/v1/ask", json={"rows": [{"image": picture}]})
    assert empty.status_code == 422 and "no 'question'" in empty.text


def test_multipart_pairs_files_with_questions_in_order(client, answerer, asked):
    files = [("image", (Path(p).name, Path(p).read_bytes(), "image/png")) for p in asked["image"]]
    data = {"question": list(asked["question"]), "top_k": "2"}
    answer = client.post("/v1/ask", files=files, data=data)
    assert answer.status_code == 200, answer.text
    got = answer.json()["rows"]
    expected = _expected(answerer, asked, top_k=2)
    assert [r["answer"] for r in got] == list(expected["answer"])
    assert [len(r["top_k"]) for r in got] == [2, 2, 2]
    one = client.post("/v1/ask", files=files[:2], data={"question": asked["question"][0]})
    same = asked.head(2).assign(question=asked["question"][0])
    assert [r["answer"] for r in one.json()["rows"]] == list(_expected(answerer, same)["answer"])
    uneven = client.post("/v1/ask", files=files, data={"question": ["a", "b"]})
    assert uneven.status_code == 422 and "one question per file" in uneven.text


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"top_k": 0}, 422, "top_k"),
        ({"top_k": 51}, 422, "top_k"),
        ({"k": 2}, 422, "k"),
        ({"rows": [{"answer": "red"}]}, 422, "no modality named 'answer'"),
        ({"rows": [{"image": "/etc/passwd", "question": "what?"}]}, 422, "upload the file"),
        ({"rows": [{"image": {"base64": "QQ=="}, "question": "q"}] * 65}, 413, "at most 64"),
    ],
)
def test_bad_requests_say_what_is_wrong(client, body, status, words):
    request = {"rows": [{"image": b64(png_bytes()), "question": "what?"}], **body}
    answer = client.post("/v1/ask", json=request)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]["message"]


def test_api_key_and_body_limit_hold_for_ask(answerer):
    settings = ServeSettings(api_key="s3cret", max_body_bytes=4096)
    with TestClient(create_app(answerer, settings)) as c:
        row = {"rows": [{"image": b64(png_bytes(16, 16)), "question": "what colour?"}]}
        assert c.post("/v1/ask", json=row).status_code == 401
        key = {"X-API-Key": "s3cret"}
        assert c.post("/v1/ask", json=row, headers=key).status_code == 200
        big = {"rows": [{"image": b64(b"x" * 8000), "question": "q"}]}
        assert c.post("/v1/ask", json=big, headers=key).status_code == 413


def test_a_question_answerer_without_ask_is_refused_clearly():
    from types import SimpleNamespace

    from plait.errors import PlaitError

    with pytest.raises(PlaitError, match="--runtime torch"):
        create_app(SimpleNamespace(task="vqa", config=None))
