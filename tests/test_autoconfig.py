"""Training from a table with no YAML: column roles, the task, presets, overrides, time limits."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import plait
from plait.autoconfig import PRESETS, auto_config, infer_roles, is_table_path
from plait.config import PlaitConfig, TrainingConfig
from plait.data.manifest import read_table
from plait.errors import ConfigError, DataError

# tiny and quiet: every run here trains in seconds on one CPU thread
QUICK = [
    "training.epochs=1",
    "training.progress=false",
    "training.tensorboard=false",
    "training.threads=1",
    "training.accelerator=cpu",
    "evaluation.report=false",
]


def absolute(demo_data: Path, values: pd.Series) -> list:
    """Demo paths made absolute (a DataFrame's paths are relative to the cwd); gaps kept."""
    return [str(demo_data / value) if isinstance(value, str) else value for value in values]


def roles_of(table, label: str = "label", preset: str = "fast") -> dict[str, tuple[str, str]]:
    return {
        r.column: (r.role, r.why) for r in infer_roles(read_table(table), label, PRESETS[preset])
    }


def test_demo_columns_get_their_roles(demo_data: Path):
    roles = roles_of(demo_data / "train.csv")
    assert {column: role for column, (role, _) in roles.items()} == {
        "id": "id",
        "caption": "text",
        "image": "image",
        "audio": "audio",
        "label": "label",
    }
    assert roles["label"][1].startswith("classification")
    assert "header" in roles["image"][1] and "header" in roles["audio"][1]


def test_config_from_the_demo_table(demo_data: Path, tmp_path: Path):
    found = auto_config(demo_data / "train.csv", "label", preset="fast", output_dir=tmp_path)
    config = found.config
    assert set(config.modalities) == {"caption", "image", "audio"}
    assert config.data.id == "id" and config.data.label == "label"
    assert config.head.task == "classification" and config.fusion.method == "concat"
    assert config.training.epochs == PRESETS["fast"]["epochs"]
    # never upscaled beyond the files: the demo images are 32 px, the clips 0.5 s
    image, audio = config.modalities["image"], config.modalities["audio"]
    assert image.kind == "image" and image.size == 32
    assert audio.kind == "audio" and audio.duration == 0.5
    # presets differ in width and epochs
    best = auto_config(demo_data / "train.csv", "label", preset="best", output_dir=tmp_path)
    assert best.config.training.epochs > config.training.epochs
    assert best.config.fusion.dim > config.fusion.dim


def test_a_text_file_named_png_is_not_an_image(demo_data: Path, tmp_path: Path):
    frame = pd.read_csv(demo_data / "train.csv").head(6)
    for position in range(len(frame)):
        (tmp_path / f"fake{position}.png").write_text("not an image at all\n")
    frame["picture"] = [f"fake{position}.png" for position in range(len(frame))]
    frame["image"] = absolute(demo_data, frame["image"])
    frame.to_csv(tmp_path / "t.csv", index=False)
    roles = roles_of(tmp_path / "t.csv")
    assert roles["image"][0] == "image"
    role, why = roles["picture"]
    assert role == "ignored" and "header bytes" in why and "fake" in why


def test_numeric_constant_and_categorical_columns_are_ignored_with_a_reason(demo_data: Path):
    frame = pd.read_csv(demo_data / "train.csv")
    frame["image"] = absolute(demo_data, frame["image"])
    frame["price"] = np.linspace(1.5, 99.0, len(frame))
    frame["source"] = "camera"
    frame["colour"] = ["red", "green", "blue"] * (len(frame) // 3)
    roles = roles_of(frame)
    assert roles["price"] == ("ignored", "numeric column: tabular features are not supported yet")
    assert roles["source"] == ("ignored", "constant column")
    assert roles["colour"][0] == "ignored" and "categorical" in roles["colour"][1]


def test_the_task_comes_from_the_label_column(demo_data: Path):
    frame = pd.read_csv(demo_data / "train.csv")
    frame["stars"] = [1, 2, 3, 4, 5, 3] * (len(frame) // 6)
    frame["price"] = np.linspace(1.5, 99.0, len(frame))
    assert roles_of(frame, "stars")["stars"][0] == "label"
    assert roles_of(frame, "stars")["stars"][1].startswith("classification")
    assert roles_of(frame, "price")["price"][1].startswith("regression")


def test_a_numeric_label_builds_a_regression_config(demo_data: Path, tmp_path: Path):
    frame = pd.read_csv(demo_data / "train.csv")
    frame["image"] = absolute(demo_data, frame["image"])
    frame["audio"] = absolute(demo_data, frame["audio"])
    frame["price"] = np.linspace(1.5, 99.0, len(frame))
    config = auto_config(frame, "price", output_dir=tmp_path).config
    assert config.head.task == "regression" and config.data.split.method == "random"
    assert "label" not in {m.column for m in config.modalities.values()}  # a category: ignored


def test_array_cells_of_pixels_are_images(tmp_path: Path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "pixels.npy", rng.integers(0, 255, (12, 10, 10), dtype=np.uint8))
    frame = pd.DataFrame(
        {"pixels": [f"pixels.npy#{i}" for i in range(12)], "label": ["a", "b"] * 6}
    )
    frame.to_csv(tmp_path / "arrays.csv", index=False)
    role, why = roles_of(tmp_path / "arrays.csv")["pixels"]
    assert role == "image" and "array cells" in why


def test_set_overrides_any_guess(demo_data: Path, tmp_path: Path):
    found = auto_config(
        demo_data / "train.csv",
        "label",
        output_dir=tmp_path,
        overrides=["modalities.caption.encoder.type=text_gru", "fusion.method=gated"],
    )
    assert found.config.modalities["caption"].encoder.type == "text_gru"
    assert found.config.fusion.method == "gated"


def test_a_wrong_label_names_the_columns_with_a_suggestion(demo_data: Path, tmp_path: Path):
    with pytest.raises(DataError, match=r"'lable' not found; did you mean 'label'\?") as err:
        auto_config(demo_data / "train.csv", "lable", output_dir=tmp_path)
    assert "id, caption, image, audio, label" in str(err.value)


def test_an_unknown_preset_is_refused(demo_data: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="did you mean `fast`"):
        auto_config(demo_data / "train.csv", "label", preset="fats", output_dir=tmp_path)


def test_label_and_preset_are_refused_with_a_config():
    raw = {"data": {"train": "t.csv", "label": "y"}, "modalities": {"t": {"column": "t"}}}
    with pytest.raises(ConfigError, match="are for a table"):
        plait.train(raw, preset="fast")


def test_tables_are_told_from_configs_by_extension():
    assert is_table_path("a/train.csv") and is_table_path(Path("x.PARQUET"))
    assert not is_table_path("run.yaml") and not is_table_path("notes.txt")


def test_time_limits_read_seconds_minutes_hours():
    assert TrainingConfig(time_limit="10m").time_limit_seconds == 600
    assert TrainingConfig(time_limit="1.5h").time_limit_seconds == 5400
    assert TrainingConfig(time_limit=90).time_limit == "90s"
    raw = {"data": {"train": "t.csv", "label": "y"}, "modalities": {"t": {"column": "t"}}}
    with pytest.raises(ConfigError, match="not a duration"):
        PlaitConfig.from_dict({**raw, "training": {"time_limit": "ten minutes"}})


def test_a_dataframe_trains_in_python(demo_data: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(demo_data)  # relative paths in a DataFrame are relative to the cwd
    frame = pd.read_csv("train.csv")
    run = plait.train(
        frame, label="label", preset="fast", overrides=[*QUICK, f"output_dir={tmp_path}"]
    )
    assert run.run_dir == tmp_path / "dataframe-label"
    assert (run.model_dir / "model.safetensors").is_file()
    # the saved copy has absolute paths, so the saved config reloads from anywhere
    saved = pd.read_parquet(run.run_dir / "train.parquet")
    assert all(os.path.isabs(value) for value in saved["image"].dropna())
    config = PlaitConfig.from_yaml(run.run_dir / "config.yaml")
    assert config.data.train == str(run.run_dir / "train.parquet")


def test_a_time_limit_stops_training_and_still_saves_a_model(demo_data: Path, tmp_path: Path):
    many = [item for item in QUICK if not item.startswith("training.epochs")]
    run = plait.train(
        demo_data / "train.csv",
        label="label",
        preset="fast",
        time_limit="2s",
        overrides=[*many, "training.epochs=1000", f"output_dir={tmp_path}"],
    )
    assert run.metrics["time_limit"] == {"limit": "2s", "stopped_training": True}
    assert run.epochs_run < 1000
    assert (run.model_dir / "model.safetensors").is_file()
    assert PlaitConfig.from_yaml(run.run_dir / "config.yaml").training.time_limit == "2s"


def test_a_second_run_on_the_same_table_gets_a_fresh_name(demo_data: Path, tmp_path: Path):
    (tmp_path / "train-label").mkdir()
    (tmp_path / "train-label" / "config.yaml").write_text("taken")
    found = auto_config(demo_data / "train.csv", "label", output_dir=tmp_path)
    assert found.config.name == "train-label-2"
    shutil.rmtree(tmp_path / "train-label")


def test_the_readme_user_guide_opens_with_the_no_yaml_start():
    """Issue 13: a newcomer reads the table-only start before any YAML."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    guide = readme[readme.index("\n## User guide\n") :]
    first = guide[guide.index("\n### ") :].splitlines()[1]
    assert first == "### A first model with no YAML"
    opening = guide[: guide.index("```yaml")] if "```yaml" in guide else guide
    assert "plait train data/movies.csv --label genre" in opening
