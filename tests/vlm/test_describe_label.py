"""`plait describe` / `plait label` and their Python twins: one answer per row in order,
problem rows kept with an `error`, answers cached, labels always among the classes,
accuracy beside an aligned model's own zero-shot."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tests.vlm.fake_backend import FakeBackend
from typer.testing import CliRunner

import plait
from plait.cli import app


def invoke(*args: object):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    result.flat = " ".join(result.output.split())  # type: ignore[attr-defined]
    return result


@pytest.fixture(scope="module")
def labelled(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 demo test rows that have a picture (paths made absolute), in a table of their own."""
    frame = pd.read_csv(demo_data / "test.csv")
    frame = frame[frame["image"].notna() & frame["caption"].notna()].head(10)
    for column in ("image", "audio"):
        frame[column] = [str(demo_data / v) if isinstance(v, str) else v for v in frame[column]]
    path = tmp_path_factory.mktemp("labelled") / "labelled.csv"
    frame.to_csv(path, index=False)
    return path


def test_describe_files_keeps_order_and_names_problem_rows(pictures: list[Path]) -> None:
    fake = FakeBackend()
    missing = pictures[0].parent / "gone.png"
    frame = plait.describe([pictures[1], missing, pictures[0]], model=fake, template="caption")
    assert list(frame.columns) == ["id", "description", "error"]
    assert frame["id"].tolist() == [str(pictures[1]), str(missing), str(pictures[0])]
    assert frame["description"][1] == "" and "gone.png" in frame["error"][1]
    assert frame["description"][0] == FakeBackend.answer(fake.requests[0])
    assert frame["description"][0] != frame["description"][2]
    assert len(fake.requests) == 2 and "caption" in fake.requests[0].prompt


def test_describe_cli_with_the_local_model_is_cached(
    chat_vlm: Path, pictures: list[Path], tmp_path: Path
) -> None:
    out, cache = tmp_path / "d.jsonl", tmp_path / "cache"
    args = ["describe", *pictures[:3], "--model", chat_vlm, "--cache-dir", cache, "-o", out]
    result = invoke(*args, "--max-new-tokens", 4)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(p) for p in pictures[:3]]
    assert len(list(cache.rglob("*.json"))) == 3
    first = out.read_text()
    again = invoke(*args, "--max-new-tokens", 4)
    assert again.exit_code == 0, again.output
    assert out.read_text() == first and len(list(cache.rglob("*.json"))) == 3


def test_describe_a_table_column(labelled: Path) -> None:
    frame = plait.describe(labelled, model=FakeBackend(), column="image", id_column="id")
    table = pd.read_csv(labelled)
    assert frame["id"].astype(str).tolist() == table["id"].astype(str).tolist()
    assert (frame["description"] != "").all()


def test_label_is_one_of_the_classes_with_metrics(labelled: Path, tmp_path: Path) -> None:
    classes = sorted(pd.read_csv(labelled)["label"].unique())
    result = plait.label(labelled, classes, model=FakeBackend(), out=tmp_path / "l.csv")
    frame = result.predictions
    assert set(frame["prediction"]) <= set(classes)
    assert result.metrics is not None
    assert result.metrics["accuracy"] == pytest.approx(frame["correct"].mean())
    confusion = result.confusion()
    assert confusion is not None and int(confusion.to_numpy().sum()) == len(frame)
    assert pd.read_csv(tmp_path / "l.csv")["prediction"].tolist() == frame["prediction"].tolist()


def test_label_cli_local_model_beside_an_aligned_model(
    chat_vlm: Path, labelled: Path, tiny_config, tmp_path: Path
) -> None:
    from plait.api import train_run
    from plait.config import PlaitConfig

    raw = tiny_config(
        tmp_path / "runs", "clip", alignment={"dim": 16, "pair": ["caption", "image"]}
    )
    raw["training"]["epochs"] = 1
    run = train_run(PlaitConfig.from_dict(raw))
    classes = ",".join(sorted(pd.read_csv(labelled)["label"].unique()))
    out = tmp_path / "labels.csv"
    result = invoke("label", labelled, "--classes", classes, "--model", chat_vlm, "--no-cache",
                    "--compare", run.model_dir, "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "accuracy" in result.flat and "aligned model" in result.flat and "confusion" in result.flat
    )
    predictions = pd.read_csv(out)
    assert set(predictions["prediction"]) <= set(classes.split(","))
    assert len(predictions) == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--classes", "a,b", "--classes-file", "c.txt"], "exactly one of --classes"),
        ([], "exactly one of --classes"),
        (["--classes", "a"], "at least two class names"),
        (["--classes", "a,b", "--provider", "openai"], "needs `base_url`"),
        (["--classes", "a,b", "--template", "lable"], "did you mean 'label'"),
        (["--classes", "a,b", "-o", "x.txt"], "write .csv, .parquet or .jsonl"),
    ],
)
def test_label_refusals_are_one_clear_line(labelled: Path, args: list[str], message: str) -> None:
    result = invoke("label", labelled, "--model", "m", *args)
    assert result.exit_code == 2, result.output
    assert message in result.flat and "Traceback" not in result.output


def test_label_through_an_openai_compatible_server(fake_chat, labelled: Path) -> None:
    """Free-text replies are mapped onto the classes; a reply naming none is `<no choice>`,
    counted wrong and shown as its own confusion column."""
    from tests.vlm.conftest import Reply, completion

    frame = pd.read_csv(labelled)
    classes = sorted(frame["label"].unique())
    replies = [f"It is {label}." for label in frame["label"][:8]] + ["I cannot tell", "no"]
    fake_chat.script = lambda index, body: Reply(body=completion(replies[index]))
    result = plait.label(labelled, classes, model="m", provider="openai",
                         base_url=fake_chat.base_url, api_key_env=None, cache=False,
                         concurrency=1)  # fmt: skip
    assert result.predictions["prediction"].tolist()[8:] == ["<no choice>"] * 2
    assert result.metrics is not None and result.metrics["accuracy"] == pytest.approx(0.8)
    confusion = result.confusion()
    assert confusion is not None and int(confusion["<no choice>"].sum()) == 2
    assert all("Answer with exactly one of" in b["messages"][0]["content"][-1]["text"]
               for b in fake_chat.bodies)  # fmt: skip


def test_describe_a_sound_through_a_server_from_the_command_line(fake_chat, tmp_path: Path):
    from tests.vlm.conftest import write_sound

    sound = write_sound(tmp_path / "tone.wav")
    out = tmp_path / "d.csv"
    result = invoke("describe", sound, "--provider", "openai", "--base-url", fake_chat.base_url,
                    "--model", "m", "--no-cache", "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    # the fake server echoes the prompt: the template was filled in for a sound
    assert pd.read_csv(out)["description"].tolist() == [
        "Describe this sound in one short sentence."
    ]
    parts = fake_chat.bodies[0]["messages"][0]["content"]
    assert any(p["type"] == "input_audio" for p in parts)
