"""The `vqa` task: config checks, training steps, accuracy per question type, unseen
answers, the report section, and save / load giving identical answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

import plait
from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.datasets.reasoning import ANSWERS, QUESTION_TYPES
from plait.errors import ConfigError
from plait.evaluation import write_report
from plait.tasks import TASKS, task_of, task_of_folder
from plait.tasks.vqa_model import head_options, resolve_head
from plait.tasks.vqa_predictor import VqaPredictor

from .conftest import table, vqa_config


def test_a_vqa_block_picks_the_vqa_task(reasoning_data: Path, tmp_path: Path) -> None:
    config = PlaitConfig.from_dict(vqa_config(reasoning_data, tmp_path))
    assert task_of(config) is TASKS["vqa"] and config.vqa_pair == ("image", "question")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"haed": "fusion"}, "Did you mean `head`"),
        ({"question": "questoin"}, "Did you mean `question`"),
        ({"context": "question"}, "must be an image or audio modality"),
    ],
)
def test_config_mistakes_name_the_key(
    reasoning_data: Path, tmp_path: Path, change, message
) -> None:
    raw = vqa_config(reasoning_data, tmp_path, **change)
    with pytest.raises(ConfigError, match=message):
        PlaitConfig.from_dict(raw)


def test_the_answer_column_is_required(reasoning_data: Path, tmp_path: Path) -> None:
    raw = vqa_config(reasoning_data, tmp_path)
    raw["data"]["label"] = None
    with pytest.raises(ConfigError, match="answer column"):
        PlaitConfig.from_dict(raw)


@pytest.mark.parametrize(
    ("vqa", "message"),
    [
        ({"head": "fusoin"}, "Did you mean `fusion`"),
        (
            {"head_options": {"fusoin": "gated"}},
            r"vqa\.head_options\.fusoin`\. Did you mean `fusion`",
        ),
        ({"head_options": {"dim": -1}}, r"vqa\.head_options\.dim"),
        ({"head_options": {"fusion": "gatd"}}, "did you mean 'gated'"),
    ],
)
def test_head_and_head_options_are_checked_when_built(
    reasoning_data: Path, tmp_path: Path, vqa: dict, message: str
) -> None:
    config = PlaitConfig.from_dict(vqa_config(reasoning_data, tmp_path, **vqa))
    data = prepare_data(config, progress=False)
    with pytest.raises(ConfigError, match=message):
        TASKS["vqa"].build(config, data.processors, data.labels)


def test_training_steps_lower_the_loss(trained_vqa) -> None:
    _, losses = trained_vqa
    assert all(map(math.isfinite, losses)) and losses[-1] < losses[0]


def test_accuracy_per_question_type(saved_vqa: Path, reasoning_data: Path) -> None:
    model = plait.load(saved_vqa)
    assert isinstance(model, VqaPredictor) and set(model.answers) <= set(ANSWERS)
    metrics = model.evaluate(reasoning_data / "test.csv")
    assert metrics["n"] == 12 and metrics["unseen_answers"] == 0
    frame = table(reasoning_data)
    answers = model.ask(frame)
    hits = (answers["answer"] == frame["answer"]).to_numpy()
    assert metrics["accuracy"] == pytest.approx(hits.mean())
    per_type = metrics["per_type"]["question_type"]
    assert set(per_type) == set(QUESTION_TYPES)
    for kind, row in per_type.items():
        mine = hits[(frame["question_type"] == kind).to_numpy()]
        assert row["n"] == len(mine) and row["accuracy"] == pytest.approx(mine.mean())
        assert metrics[f"accuracy_{kind}"] == row["accuracy"]
    assert set(metrics["per_type"]["relation"]) == {"non-relational", "relational"}
    assert "accuracy_non_relational" in metrics


def test_an_unseen_answer_is_scored_wrong(saved_vqa: Path, reasoning_data: Path) -> None:
    model = plait.load(saved_vqa)
    frame = table(reasoning_data)
    before = model.evaluate(frame)
    frame.loc[0, "answer"] = "banana"
    after = model.evaluate(frame)
    assert after["unseen_answers"] == 1 and after["n"] == before["n"]
    first_was_right = model.ask(frame.iloc[:1])["answer"][0] == before["examples"][0]["expected"]
    assert after["accuracy"] == pytest.approx(before["accuracy"] - first_was_right / before["n"])


def test_a_missing_type_column_is_named(saved_vqa: Path, reasoning_data: Path) -> None:
    frame = table(reasoning_data).drop(columns=["relation"])
    with pytest.raises(plait.DataError, match="no column 'relation'"):
        plait.load(saved_vqa).evaluate(frame)


def test_report_section(saved_vqa: Path, reasoning_data: Path, tmp_path: Path) -> None:
    metrics = plait.load(saved_vqa).evaluate(reasoning_data / "test.csv")
    page = write_report(tmp_path, metrics, task=TASKS["vqa"].report).read_text()
    assert "Accuracy per question type" in page and "furthest" in page
    assert "Answered questions" in page and "what is the shape" in page
    assert json.loads((tmp_path / "metrics.json").read_text())["n"] == 12


def test_save_load_reload_give_identical_answers(
    saved_vqa: Path, reasoning_data: Path, tmp_path: Path
) -> None:
    assert task_of_folder(saved_vqa) is TASKS["vqa"]
    assert json.loads((saved_vqa / "manifest.json").read_text())["task"] == "vqa"
    first = plait.load(saved_vqa)
    expected = first.ask(reasoning_data / "test.csv", top_k=3)
    again = plait.load(first.save(tmp_path / "again"))
    pd.testing.assert_frame_equal(again.ask(reasoning_data / "test.csv", top_k=3), expected)
    assert list(expected.columns) == [
        "id", "answer", "probability", "answer_2", "probability_2", "answer_3", "probability_3",
    ]  # fmt: skip
    assert (expected["probability"] >= expected["probability_2"]).all()


def test_the_recipe_head_options_are_valid() -> None:
    recipe = Path(__file__).parents[2] / "configs" / "vqa-reasoning.yaml"
    config = PlaitConfig.from_yaml(recipe)
    assert config.vqa is not None and config.vqa.type_columns == ["question_type", "relation"]
    options = head_options(resolve_head(config.vqa.head), config.vqa.head_options)
    assert options.model_dump()["fusion"] == "concat"
