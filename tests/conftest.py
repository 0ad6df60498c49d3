"""Shared fixtures: a tiny generated demo data set and tiny configs that train in seconds."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from plait.datasets.demo import generate_demo

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` on two cores: one thread per worker, and for the processes it starts
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with train.csv (48 rows), test.csv (16 rows), images/ and audio/.

    Shared by every test of the session: treat it as read-only (copy before editing).
    """
    root = tmp_path_factory.mktemp("demo-data")
    generate_demo(root, n_train=48, n_test=16, seed=0)
    return root


def build_tiny_config(data_dir: Path, out_dir: Path, name: str = "tiny", **sections: Any) -> dict:
    """A raw config dict for the demo data that trains in about a second on one CPU core.

    `sections` are merged one level deep, e.g. `training={"epochs": 3}`; a value that is
    not a dict replaces the key. The run's HTML report is off (`metrics.json` is still
    written): its figures take most of a tiny run's time, so the tests that read it ask
    for it with `evaluation={"report": True}`.
    """
    raw: dict[str, Any] = {
        "name": name,
        "output_dir": str(out_dir),
        "data": {
            "train": str(data_dir / "train.csv"),
            "test": str(data_dir / "test.csv"),
            "label": "label",
            "id": "id",
            "split": {"method": "stratified", "valid": 0.25, "test": 0.0, "seed": 0},
        },
        "modalities": {
            "caption": {
                "kind": "text",
                "column": "caption",
                "max_length": 16,
                "encoder": {"type": "text_cnn", "dim": 16},
            },
            "image": {
                "kind": "image",
                "column": "image",
                "size": 32,
                "augment": False,
                "encoder": {"type": "image_cnn", "dim": 16, "layers": 2},
            },
            "audio": {
                "kind": "audio",
                "column": "audio",
                "sample_rate": 16000,
                "duration": 0.5,
                "n_mels": 16,
                "n_fft": 256,
                "hop_length": 160,
                "encoder": {"type": "audio_cnn", "dim": 16, "layers": 1},
            },
        },
        "fusion": {"method": "concat", "dim": 16},
        "head": {"task": "classification", "hidden": 16},
        "training": {
            "epochs": 2,
            "batch_size": 16,
            "lr": 3e-3,
            "progress": False,
            "tensorboard": False,
            "threads": 1,
            "accelerator": "cpu",
            "seed": 0,
        },
        "evaluation": {"report": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **copy.deepcopy(value)}
        else:
            raw[key] = copy.deepcopy(value)
    return raw


@pytest.fixture(scope="session")
def tiny_config(demo_data: Path):
    """tiny_config(out_dir, name="tiny", **sections) -> raw config dict over `demo_data`."""

    def build(out_dir: Path, name: str = "tiny", **sections: Any) -> dict:
        return build_tiny_config(demo_data, Path(out_dir), name, **sections)

    return build


# row number (1-based) -> (column, file written there); None: the file does not exist
HOSTILE_FILES = {
    2: ("image", "gone.png"),
    4: ("image", "noise.png"),
    6: ("image", "half.png"),
    9: ("image", "empty.png"),
    13: ("image", "text.png"),
    14: ("audio", "noise.wav"),
    18: ("audio", "empty.wav"),
    21: ("audio", "gone.wav"),
    25: ("audio", "header.wav"),
}


@pytest.fixture(scope="session")
def hostile_table(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """25 demo rows (test.csv, then 9 of train.csv; paths made absolute) where the nine
    rows of `HOSTILE_FILES` point at a missing, corrupt, truncated or empty image or audio
    file. Ids stay the demo's, so predictions can be joined back. Read-only."""
    import pandas as pd

    out = tmp_path_factory.mktemp("hostile")
    frame = pd.concat(
        [pd.read_csv(demo_data / "test.csv"), pd.read_csv(demo_data / "train.csv").head(9)],
        ignore_index=True,
    )
    for column in ("image", "audio"):
        frame[column] = [str(demo_data / v) if isinstance(v, str) else v for v in frame[column]]
    png = sorted((demo_data / "images").glob("*.png"))[0].read_bytes()
    wav = sorted((demo_data / "audio").glob("*.wav"))[0].read_bytes()
    contents = {
        "noise.png": bytes(range(256)) * 4,
        "half.png": png[: len(png) // 2],
        "empty.png": b"",
        "text.png": b"not an image at all\n",
        "noise.wav": bytes(range(256)) * 8,
        "empty.wav": b"",
        "header.wav": wav[:44],  # a RIFF header and no samples
    }
    for row, (column, name) in HOSTILE_FILES.items():
        if name in contents:
            (out / name).write_bytes(contents[name])
        frame[column] = frame[column].astype(object)
        frame.loc[row - 1, column] = str(out / name)
    table = out / "hostile.csv"
    frame.to_csv(table, index=False)
    return table


@pytest.fixture(scope="session")
def hostile_rows() -> dict[int, tuple[str, str]]:
    """The bad rows of `hostile_table`: row number -> (column, file name)."""
    return dict(HOSTILE_FILES)
