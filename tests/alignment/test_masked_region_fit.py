"""Masked region modelling as an alignment objective: it learns on images and on sounds,
its heads save and load with the model, and its settings are checked when read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image

from plait.alignment.predictor import AlignedPredictor
from plait.api import train_run as fit
from plait.config import PlaitConfig
from plait.errors import ConfigError

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
PLACES = {"top left": (0, 0), "top right": (0, 8), "bottom left": (8, 0), "bottom right": (8, 8)}
TRAINING = {
    "batch_size": 16,
    "lr": 5e-3,
    "progress": False,
    "tensorboard": False,
    "threads": 1,
    "accelerator": "cpu",
}


@pytest.fixture(scope="module")
def square_data(tmp_path_factory) -> Path:
    """A coloured 8 x 8 square in one quadrant of a dark 16 x 16 image; the text names the
    colour and the quadrant, so a hidden region's colour follows from either side."""
    root = tmp_path_factory.mktemp("squares")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(96):
        colour, place = list(COLOURS)[i % 3], list(PLACES)[(i // 3) % 4]
        pixels = rng.normal(20, 10, (16, 16, 3))
        top, left = PLACES[place]
        pixels[top : top + 8, left : left + 8] = np.array(COLOURS[colour]) + rng.normal(
            0, 10, (8, 8, 3)
        )
        path = root / f"{i}.png"
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
        rows.append({"id": str(i), "text": f"{colour} square {place}", "image": path.name})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    return root


def square_config(data: Path, out: Path, name: str, epochs: int = 6, **alignment) -> PlaitConfig:
    return PlaitConfig.from_dict(
        {
            "name": name,
            "output_dir": str(out),
            "data": {
                "train": str(data / "train.csv"),
                "id": "id",
                "split": {"method": "random", "valid": 0.15, "test": 0.0},
            },
            "modalities": {
                "text": {
                    "kind": "text",
                    "column": "text",
                    "encoder": {"type": "text_cnn", "dim": 16},
                },
                "image": {
                    "kind": "image",
                    "column": "image",
                    "size": 16,
                    "augment": False,
                    "encoder": {"type": "image_cnn", "dim": 16, "layers": 2},
                },
            },
            "alignment": {"dim": 16, **alignment},
            "training": {**TRAINING, "epochs": epochs},
        }
    )


@pytest.fixture(scope="module")
def mrm_run(square_data, tmp_path_factory):
    objectives = [{"name": "clip"}, {"name": "mrm"}]
    config = square_config(
        square_data, tmp_path_factory.mktemp("runs"), "mrm", objectives=objectives, mrm_ratio=0.3
    )
    return fit(config)


def test_mrm_term_falls(mrm_run) -> None:
    history = pd.read_csv(mrm_run.run_dir / "logs" / "csv" / "metrics.csv")
    mrm = history["train/mrm"].dropna().to_numpy()
    assert len(mrm) == 6 and np.isfinite(mrm).all()
    assert mrm[-1] < 0.7 * mrm[0], mrm
    # what it learns beyond each region's average needs more steps than this test runs:
    # tests/objectives/test_masked_region.py trains the head until it does


def test_mrm_heads_save_and_load(mrm_run, square_data) -> None:
    model = mrm_run.predictor.model
    assert model.regions is not None and set(model.regions) == {"image"}
    head = model.regions["image"]
    assert head.key == "pixel_values" and head.regions == 16
    loaded = AlignedPredictor.load(mrm_run.model_dir)
    assert loaded.model.regions is not None
    before = {k: v for k, v in model.state_dict().items() if k.startswith("regions.")}
    after = {k: v for k, v in loaded.model.state_dict().items() if k.startswith("regions.")}
    assert before.keys() == after.keys() and before
    for key, value in before.items():
        torch.testing.assert_close(after[key], value)
    ids, first = mrm_run.predictor.embed(square_data / "train.csv", "image")
    _, second = loaded.embed(square_data / "train.csv", "image")
    np.testing.assert_allclose(first, second, atol=1e-6)


@pytest.fixture(scope="module")
def tone_data(tmp_path_factory) -> Path:
    """Low or high tones, short or long, described in words."""
    root = tmp_path_factory.mktemp("tones")
    rate = 8000
    rows = []
    for i in range(48):
        pitch, length = ["low", "high"][i % 2], ["short", "long"][(i // 2) % 2]
        seconds = 0.1 if length == "short" else 0.22
        t = np.arange(int(rate * seconds)) / rate
        wave = 0.5 * np.sin(2 * np.pi * (300 if pitch == "low" else 2400) * t)
        wave = np.concatenate([wave, np.zeros(int(rate * 0.25) - len(wave))])
        sf.write(root / f"{i}.wav", wave.astype(np.float32), rate)
        rows.append({"id": str(i), "text": f"a {length} {pitch} tone", "audio": f"{i}.wav"})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    return root


def test_mrm_on_an_audio_tower(tone_data, tmp_path) -> None:
    config = PlaitConfig.from_dict(
        {
            "name": "tones",
            "output_dir": str(tmp_path),
            "data": {
                "train": str(tone_data / "train.csv"),
                "id": "id",
                "split": {"method": "random", "valid": 0.2, "test": 0.0},
            },
            "modalities": {
                "text": {
                    "kind": "text",
                    "column": "text",
                    "encoder": {"type": "text_cnn", "dim": 16},
                },
                "audio": {
                    "kind": "audio",
                    "column": "audio",
                    "sample_rate": 8000,
                    "duration": 0.25,
                    "n_mels": 16,
                    "n_fft": 128,
                    "hop_length": 32,
                    "encoder": {"type": "audio_cnn", "dim": 16, "layers": 1},
                },
            },
            "alignment": {
                "dim": 16,
                "objectives": [{"name": "clip"}, {"name": "mrm", "weight": 2.0}],
                "mrm_grid": [4, 8],
            },
            "training": {**TRAINING, "epochs": 5},
        }
    )
    run = fit(config)
    head = run.predictor.model.regions["audio"]
    assert head.key == "features" and head.regions == 32  # 4 frequency bands x 8 time chunks
    history = pd.read_csv(run.run_dir / "logs" / "csv" / "metrics.csv")
    mrm = history["train/mrm"].dropna().to_numpy()
    assert len(mrm) == 5 and mrm[-1] < mrm[0], mrm
    loaded = AlignedPredictor.load(run.model_dir)
    torch.testing.assert_close(
        loaded.model.regions["audio"].queries, run.predictor.model.regions["audio"].queries
    )


@pytest.mark.parametrize(
    ("alignment", "message"),
    [
        ({"objectives": [{"name": "clip"}, {"name": "mrn"}]}, "mrn"),
        ({"objectives": [{"name": "clip"}, {"name": "mrm"}], "mrm_ratoi": 0.3}, "mrm_ratoi"),
        ({"mrm_ratio": 1.0}, "mrm_ratio"),
        ({"mrm_grid": [1, 1]}, "at least 2 regions"),
        ({"mrm_grid": 0}, "at least 2 regions"),
        ({"objectives": [{"name": "mrm"}]}, "needs `clip` or `siglip`"),
    ],
)
def test_mrm_config_errors(square_data, tmp_path, alignment, message) -> None:
    with pytest.raises(ConfigError, match=message):
        square_config(square_data, tmp_path, "bad", **alignment)


def test_mrm_needs_an_image_or_audio_modality(square_data, tmp_path) -> None:
    raw = square_config(square_data, tmp_path, "x").model_dump(mode="json")
    raw["modalities"]["image"] = {"kind": "text", "column": "text"}
    raw["alignment"]["objectives"] = [{"name": "clip"}, {"name": "mrm"}]
    with pytest.raises(ConfigError, match="masks image or audio regions"):
        PlaitConfig.from_dict(raw)
