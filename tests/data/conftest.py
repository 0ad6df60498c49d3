"""Fixtures for the data-layer tests: real image/audio files and small configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from plait.config import PlaitConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _two_colour(width: int = 40, height: int = 20) -> Image.Image:
    """Left half red, right half blue: orientation changes are visible."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(array, "RGB")


def tone(freq: float, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of good and bad media files, shared by all data tests (read-only)."""
    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)

    _two_colour().save(root / "rgb.png")
    _two_colour().save(root / "rgb.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    _two_colour().save(root / "rotated.jpg", exif=exif, quality=95)
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    palette.save(root / "palette.png", transparency=0)
    Image.new("RGBA", (16, 16), (0, 0, 255, 0)).save(root / "rgba.png")  # fully transparent
    Image.fromarray(np.full((12, 12), 30000, dtype=np.uint16)).save(root / "gray16.png")
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(root / "cmyk.jpg")  # red in CMYK
    Image.new("LA", (8, 8), (100, 255)).save(root / "la.png")
    (root / "corrupt.png").write_bytes(rng.bytes(500))
    full = (root / "rgb.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(full[: len(full) // 2])
    big = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(big).save(root / "big.png")

    sf.write(root / "stereo44k.wav", tone(440, 1.0, 44100, channels=2), 44100)
    sf.write(root / "tone16k.flac", tone(440, 0.5, 16000), 16000)
    sf.write(root / "long16k.wav", rng.standard_normal(48000).astype(np.float32) * 0.1, 16000)
    sf.write(root / "empty.wav", np.zeros((0, 1), dtype=np.float32), 16000)
    (root / "bad.wav").write_bytes(rng.bytes(800))
    return root


@pytest.fixture()
def make_config():
    """make_config(train=..., **overrides) -> PlaitConfig with image+text+audio modalities."""

    def build(train: Any, modalities: dict | None = None, **sections: Any) -> PlaitConfig:
        raw: dict[str, Any] = {
            "data": {"train": str(train), "label": "label"},
            "modalities": modalities
            or {
                "review": {"kind": "text", "column": "text"},
                "poster": {"kind": "image", "column": "image", "size": 16},
                "clip": {
                    "kind": "audio",
                    "column": "audio",
                    "duration": 0.25,
                    "n_mels": 16,
                    "n_fft": 256,
                },
            },
            "training": {"progress": False},
        }
        for key, value in sections.items():
            if isinstance(value, dict):
                raw.setdefault(key, {}).update(value)
            else:
                raw[key] = value
        return PlaitConfig.from_dict(raw)

    return build


@pytest.fixture()
def good_rows(media: Path) -> list[dict[str, Any]]:
    """Twelve valid rows with absolute media paths."""
    rows = []
    for i in range(12):
        rows.append(
            {
                "id": f"s{i}",
                "text": f"sample number {i} is {'great' if i % 2 else 'bad'}",
                "image": str(media / ["rgb.png", "rotated.jpg", "palette.png", "rgba.png"][i % 4]),
                "audio": str(media / ["stereo44k.wav", "tone16k.flac"][i % 2]),
                "label": ["cat", "dog"][i % 2],
                "speaker": f"spk{i // 3}",
            }
        )
    return rows
