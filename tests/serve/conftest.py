"""Tiny untrained-but-saved models for the service tests: built and saved without a
trainer (the service only needs a loadable folder; outputs are whatever the random
weights give, compared against `predict()` in-process)."""

from __future__ import annotations

import base64
import io
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.tasks import task_of


def _absolute(demo_data: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        frame = pd.read_csv(demo_data / f"{split}.csv")
        for column in ("image", "audio"):
            frame[column] = [
                str(demo_data / v) if isinstance(v, str) and v else v for v in frame[column]
            ]
        frame.to_csv(out / f"{split}.csv", index=False)
    return out


def _save(raw: dict, out: Path) -> Path:
    torch.manual_seed(0)
    config = PlaitConfig.from_dict(raw)
    task = task_of(config)
    data = prepare_data(config, progress=False)
    model = task.build(config, data.processors, data.labels)
    predictor = task.predictor_of(model, config, data.processors, data.labels)
    return predictor.save(out / "model")


@pytest.fixture(scope="session")
def serve_data(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _absolute(demo_data, tmp_path_factory.mktemp("serve-data"))


@pytest.fixture(scope="session")
def classifier_folder(serve_data: Path, tiny_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve-clf")
    raw = tiny_config(out, "serve-clf")
    raw["data"]["train"] = str(serve_data / "train.csv")
    raw["data"]["test"] = str(serve_data / "test.csv")
    return _save(raw, out)


@pytest.fixture(scope="session")
def aligned_folder(serve_data: Path, tiny_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve-aligned")
    raw = tiny_config(out, "serve-aligned")
    raw["data"]["train"] = str(serve_data / "train.csv")
    raw["data"]["test"] = str(serve_data / "test.csv")
    del raw["modalities"]["audio"]
    del raw["head"]
    raw["alignment"] = {"dim": 8, "objectives": [{"name": "clip"}]}
    return _save(raw, out)


@pytest.fixture(scope="session")
def classifier(classifier_folder: Path):
    import plait

    return plait.load(classifier_folder)


@pytest.fixture(scope="session")
def aligned(aligned_folder: Path):
    import plait

    return plait.load(aligned_folder)


def png_bytes(width: int = 32, height: int = 32, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(seconds: float = 0.5, rate: int = 16000, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    samples = (rng.standard_normal(int(seconds * rate)) * 3000).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def b64(data: bytes, filename: str = "") -> dict:
    return {"base64": base64.b64encode(data).decode(), "filename": filename}
