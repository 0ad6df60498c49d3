"""`model.ask`, `plait.ask`, `plait ask` and `plait data vqa`: answers, top k, and a
clear error (exit 2) for each user mistake."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import plait
from plait.cli import app
from plait.errors import PlaitError

from .conftest import table

QUESTION = "what is the shape of the red object?"


def test_ask_rows_as_dicts_by_column_or_modality(saved_vqa: Path, reasoning_data: Path) -> None:
    model = plait.load(saved_vqa)
    picture = str(reasoning_data / "images" / "scene-00011.png")
    by_column = model.ask([{"image": picture, "question": QUESTION}], top_k=2)
    assert list(by_column.columns) == ["id", "answer", "probability", "answer_2", "probability_2"]
    assert by_column["answer"][0] in model.answers and by_column["id"][0] == "1"
    assert 0.0 < by_column["probability"][0] <= 1.0
    one = model.ask({"image": picture, "question": QUESTION})
    assert one["answer"][0] == by_column["answer"][0]
    assert one["probability"][0] == pytest.approx(by_column["probability"][0])


def test_ask_answers_each_row_of_a_table_in_order(saved_vqa: Path, reasoning_data: Path) -> None:
    model = plait.load(saved_vqa)
    frame = table(reasoning_data)
    answers = model.ask(frame)
    assert list(answers["id"]) == list(frame["id"])
    single = model.ask(frame.iloc[[3]])
    assert single["answer"][0] == answers["answer"][3]


def test_unreadable_files_keep_their_row(saved_vqa: Path, reasoning_data: Path) -> None:
    model = plait.load(saved_vqa)
    frame = table(reasoning_data).iloc[:3].copy()
    frame.loc[1, "image"] = str(reasoning_data / "missing.png")
    answers = model.ask(frame)
    assert len(answers) == 3 and answers["answer"].isna().tolist() == [False, True, False]
    assert "not found" in answers["error"][1]
    with pytest.raises(PlaitError, match="missing.png"):
        model.ask(frame, on_error="raise")


def test_plait_ask_api(saved_vqa: Path, reasoning_data: Path, tmp_path: Path) -> None:
    picture = reasoning_data / "images" / "scene-00011.png"
    out = tmp_path / "answers.csv"
    frame = plait.ask(saved_vqa, [picture, picture], QUESTION, output=out, top_k=3)
    assert list(frame["id"]) == [str(picture)] * 2 and "answer_3" in frame
    assert pd.read_csv(out)["answer"].astype(str).tolist() == frame["answer"].tolist()
    with pytest.raises(PlaitError, match="one question for every file"):
        plait.ask(saved_vqa, [picture, picture], [QUESTION] * 3)


def test_ask_command(saved_vqa: Path, reasoning_data: Path, tmp_path: Path) -> None:
    picture = reasoning_data / "images" / "scene-00011.png"
    result = CliRunner().invoke(
        app, ["ask", str(saved_vqa), str(picture), QUESTION, "--top-k", "2"]
    )
    assert result.exit_code == 0, result.output
    expected = plait.ask(saved_vqa, picture, QUESTION, progress=False)["answer"][0]
    assert expected in result.stdout and "probability_2" in result.stdout
    out = tmp_path / "all.csv"
    result = CliRunner().invoke(
        app, ["ask", str(saved_vqa), "--data", str(reasoning_data / "test.csv"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{picture}"], "give FILE and QUESTION"),
        (["{missing}", QUESTION], "no such file"),
        (["--data", "{no_question}"], "question"),
        (["{picture}", QUESTION, "--data", "{no_question}"], "not both"),
    ],
)
def test_ask_command_mistakes_exit_2(
    saved_vqa: Path, reasoning_data: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    no_question = tmp_path / "no_question.csv"
    table(reasoning_data).drop(columns=["question"]).to_csv(no_question, index=False)
    paths = {"picture": reasoning_data / "images" / "scene-00011.png",
             "missing": tmp_path / "nope.png", "no_question": no_question}  # fmt: skip
    filled = [a.format(**paths) for a in args]
    result = CliRunner().invoke(app, ["ask", str(saved_vqa), *filled])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_ask_refuses_a_model_that_does_not_answer(tmp_path: Path) -> None:
    classifier = Path(__file__).parents[1] / "fixtures" / "saved_v0" / "supervised"
    with pytest.raises(PlaitError, match="classification model; answers come from .* `vqa:`"):
        plait.ask(classifier, "a.png", QUESTION)
    with pytest.raises(PlaitError, match="config.yaml is missing"):
        plait.ask(tmp_path, "a.png", QUESTION)


def test_data_vqa_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["data", "vqa", str(tmp_path), "--train", "2", "--valid", "1", "--test", "1"]
    )
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "train.csv")
    assert len(rows) == 2 * 36  # by default every question type about every colour, once
    assert len(set(zip(rows["scene"], rows["question"], strict=True))) == 72
    assert len(list((tmp_path / "images").glob("*.png"))) == 4
    shutil.rmtree(tmp_path / "images")


@pytest.mark.parametrize("command", [["ask"], ["data", "vqa"]])
def test_help_shows_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "Example" in result.output
    assert f"plait {' '.join(command)}" in " ".join(result.output.split())


def test_predict_points_to_ask(saved_vqa: Path, reasoning_data: Path) -> None:
    with pytest.raises(PlaitError, match="use plait ask"):
        plait.predict(saved_vqa, reasoning_data / "test.csv")
