"""Questions about sounds: `plait data vqa --kind tones` writes the tone questions, and a
tiny audio question answerer trained on a few of them answers through `model.ask`,
`plait.ask` and `evaluate` (accuracy per question type)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import plait
from plait.cli import app
from plait.datasets.tone_questions import ANSWERS, QUESTION_TYPES, generate_tone_questions

from .conftest import train_steps, vqa_config

QUESTION = "is the first tone short or long?"


def audio_vqa_config(data: Path, out: Path) -> dict:
    """`vqa_config` with the tone clips as the context: an `audio_cnn` map, clips read
    whole (2.3 s holds the longest, 2.25 s)."""
    raw = vqa_config(data, out)
    del raw["modalities"]["image"]
    raw["modalities"] = {
        "audio": {
            "kind": "audio",
            "column": "audio",
            "duration": 2.3,
            "n_mels": 16,
            "encoder": {"type": "audio_cnn", "dim": 8, "layers": 2},
        },
        **raw["modalities"],
    }
    return raw


@pytest.fixture(scope="module")
def tone_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 / 1 / 2 clips, 4 questions each: the training split is one batch of 16."""
    root = tmp_path_factory.mktemp("tone-questions")
    generate_tone_questions(root, n_train=4, n_valid=1, n_test=2, seed=0, questions=4)
    return root


def test_an_audio_answerer_trains_answers_and_reports_per_type(
    tone_data: Path, tmp_path: Path
) -> None:
    # the training split is one batch: each step is an epoch
    predictor, losses = train_steps(audio_vqa_config(tone_data, tmp_path), 6)
    assert losses[-1] < losses[0]  # the sounds and questions reach the loss
    assert predictor.config.vqa_pair == ("audio", "question")
    assert all(answer in ANSWERS for answer in predictor.answers)
    clip = str(tone_data / "audio" / "clip-00001.wav")
    answers = predictor.ask({"audio": clip, "question": QUESTION}, top_k=2)
    assert answers["answer"][0] in predictor.answers and 0 < answers["probability"][0] <= 1
    metrics = predictor.evaluate(tone_data / "test.csv")
    asked = set(pd.read_csv(tone_data / "test.csv")["question_type"])
    assert asked <= set(QUESTION_TYPES) and {f"accuracy_{t}" for t in asked} <= set(metrics)
    folder = predictor.save(tmp_path / "model")
    again = plait.ask(folder, clip, QUESTION, top_k=2, progress=False)
    assert again["answer"][0] == answers["answer"][0]
    assert again["probability"][0] == pytest.approx(answers["probability"][0], abs=1e-6)


def test_data_vqa_tones_command(tmp_path: Path) -> None:
    args = ["data", "vqa", str(tmp_path), "--kind", "tones", "--train", "2", "--valid", "1",
            "--test", "1", "--questions", "3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "train.csv")
    assert len(rows) == 6 and set(rows["question_type"]) <= set(QUESTION_TYPES)
    assert len(list((tmp_path / "audio").glob("clip-*.wav"))) == 4


def test_data_vqa_refuses_an_unknown_kind(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "vqa", str(tmp_path), "--kind", "tune"])
    assert result.exit_code == 2 and "tones" in result.output
