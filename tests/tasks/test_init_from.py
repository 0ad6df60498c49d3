"""`init_from`: a run starts its towers from a saved model folder (pretrain, then
fine-tune): which towers match, what is copied, and the mistakes it names."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from plait.api import check_data, train_run
from plait.cli import app
from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.errors import ConfigError, PlaitError
from plait.tasks import load, task_of
from plait.tasks.init_from import InitialisedTask

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
TRAINING = {
    "epochs": 2,
    "batch_size": 16,
    "lr": 5e-3,
    "progress": False,
    "tensorboard": False,
    "threads": 1,
    "accelerator": "cpu",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(48):
        colour = list(COLOURS)[i % 3]
        pixels = np.array(COLOURS[colour]) + rng.normal(0, 20, (16, 16, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / f"{i}.png")
        rows.append(
            {
                "id": str(i),
                "text": f"a {colour} picture {i % 5}",
                "image": f"{i}.png",
                "colour": colour,
            }
        )
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    return root


def modalities(image: str = "image", dim: int = 16, channels: int = 3) -> dict:
    return {
        "text": {"kind": "text", "column": "text", "encoder": {"type": "text_cnn", "dim": 16}},
        image: {
            "kind": "image",
            "column": "image",
            "size": 16,
            "channels": channels,
            "augment": False,
            "encoder": {"type": "image_cnn", "dim": dim, "layers": 1},
        },
    }


@pytest.fixture(scope="module")
def aligned(data, tmp_path_factory) -> Path:
    """A tiny aligned model (clip + mlm: its text vocabulary gains a mask row)."""
    config = PlaitConfig.from_dict(
        {
            "name": "pretrain",
            "output_dir": str(tmp_path_factory.mktemp("runs")),
            "data": {"train": str(data / "train.csv"), "id": "id"},
            "modalities": modalities(),
            "alignment": {"dim": 16, "objectives": [{"name": "clip"}, {"name": "mlm"}]},
            "training": TRAINING,
        }
    )
    return train_run(config).model_dir


def classifier(data: Path, out: Path, init_from: Path | None, **kw) -> dict:
    raw = {
        "name": "finetune",
        "output_dir": str(out),
        "data": {"train": str(data / "train.csv"), "id": "id", "label": "colour"},
        "modalities": modalities(**kw),
        "training": TRAINING,
    }
    if init_from is not None:
        raw["init_from"] = str(init_from)
    return raw


def built(raw: dict) -> tuple[torch.nn.Module, dict, InitialisedTask]:
    config = PlaitConfig.from_dict(raw)
    prepared = prepare_data(config, progress=False)
    task = InitialisedTask(task_of(config))
    return task.build(config, prepared.processors, prepared.labels), prepared.processors, task


def tower_state(model: torch.nn.Module, name: str) -> dict[str, torch.Tensor]:
    return model.encoders[name].state_dict()


def test_classifier_starts_with_the_aligned_towers(aligned, data, tmp_path) -> None:
    source = load(aligned)
    model, processors, task = built(classifier(data, tmp_path, aligned))
    assert {c.name: c.source for c in task.copies} == {"text": "text", "image": "image"}
    for name in ("text", "image"):
        theirs = tower_state(source.model, name)
        for key, value in tower_state(model, name).items():
            if key.endswith("embedding.weight") and name == "text":
                # the mlm mask row is dropped, every real token's row is kept
                assert len(theirs[key]) == len(value) + 1
                torch.testing.assert_close(value, theirs[key][: len(value)], rtol=0, atol=0)
            else:
                torch.testing.assert_close(value, theirs[key], rtol=0, atol=0)
    # the text tower brings its vocabulary, so token ids mean the same words
    assert processors["text"].state_dict() == source.processors["text"].state_dict()
    # a run from scratch starts elsewhere
    scratch, _, _ = built(classifier(data, tmp_path, None))
    image = tower_state(scratch, "image")
    assert any(not torch.equal(v, tower_state(model, "image")[k]) for k, v in image.items())


def test_a_run_from_init_from_trains_and_stands_alone(aligned, data, tmp_path) -> None:
    copy = tmp_path / "pretrained"
    shutil.copytree(aligned, copy)
    run = train_run(PlaitConfig.from_dict(classifier(data, tmp_path / "runs", copy)))
    shutil.rmtree(copy)  # the fine-tuned folder holds every weight itself
    loaded = load(run.model_dir)
    frame = pd.read_csv(data / "train.csv").head(6)
    frame["image"] = [str(data / name) for name in frame["image"]]
    pd.testing.assert_frame_equal(run.predictor.predict(frame), loaded.predict(frame))


def test_towers_match_by_kind_when_names_differ(aligned, data, tmp_path) -> None:
    model, _, task = built(classifier(data, tmp_path, aligned, image="picture"))
    assert {c.name: c.source for c in task.copies} == {"text": "text", "picture": "image"}
    torch.testing.assert_close(
        tower_state(model, "picture"), tower_state(load(aligned).model, "image")
    )


def test_a_different_encoder_is_left_as_built_and_said(aligned, data, tmp_path) -> None:
    _, _, task = built(classifier(data, tmp_path, aligned, dim=8))
    copies = {c.name: c for c in task.copies}
    assert copies["text"].source == "text"
    assert copies["image"].source is None and "dim 16 there, 8 here" in copies["image"].note


def test_nothing_matching_is_an_error(aligned, data, tmp_path) -> None:
    raw = classifier(data, tmp_path, aligned, dim=8)
    raw["modalities"]["text"]["encoder"]["type"] = "text_gru"
    with pytest.raises(PlaitError, match="no tower of that model fits this run"):
        built(raw)


def test_a_shape_that_differs_names_the_tensor(aligned, data, tmp_path) -> None:
    # grey images: the same encoder block, but its first convolution reads 1 channel, not 3
    with pytest.raises(PlaitError, match=r"tensor `encoders\.image\.[\w.]+` has shape"):
        built(classifier(data, tmp_path, aligned, channels=1))


def test_init_from_must_be_a_model_folder(data, tmp_path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(classifier(data, tmp_path, tmp_path / "missing")))
    with pytest.raises(ConfigError, match="is not a folder"):
        PlaitConfig.from_yaml(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlaitError, match="init_from.*model.safetensors is missing"):
        built(classifier(data, tmp_path, tmp_path / "empty"))
    with pytest.raises(PlaitError, match="init_from.*model.safetensors is missing"):
        check_data(classifier(data, tmp_path, tmp_path / "empty"))  # `plait check` too
    with pytest.raises(ConfigError, match="init_fro"):
        PlaitConfig.from_dict({**classifier(data, tmp_path, None), "init_fro": "x"})


def test_cli_set_init_from(aligned, data, tmp_path) -> None:
    raw = classifier(data, tmp_path / "runs", None)
    raw["training"]["epochs"] = 1
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(
        app, ["train", str(path), "--set", f"init_from={aligned}"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "runs" / "finetune" / "model" / "config.yaml").read_text())
    assert saved["init_from"] == str(aligned)
    bad = CliRunner().invoke(app, ["train", str(path), "--set", f"init_from={tmp_path}"])
    assert bad.exit_code == 2 and "model.safetensors is missing" in " ".join(bad.output.split())
