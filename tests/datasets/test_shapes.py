"""The shapes retrieval data: deterministic, balanced, and the concept in every modality."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from plait.datasets.shapes import (
    AUDIO_SECONDS,
    BEEPS,
    COLOUR_RGB,
    COLOURS,
    COLUMNS,
    CONCEPTS,
    IMAGE_SIZE,
    PITCH_BANDS_HZ,
    SAMPLE_RATE,
    SHAPES,
    generate_shapes,
)

SIZES = {"n_train": 96, "n_valid": 32, "n_test": 32}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("shapes")
    return out, generate_shapes(out, seed=0, **SIZES)


@pytest.fixture(scope="module")
def rows(shapes) -> list[dict[str, str]]:
    _, paths = shapes
    return [row for split in ("train", "valid", "test") for row in read_rows(paths[split])]


# --- crude, non-neural detectors, one per cue ----------------------------------------


def image_colour(pixels: np.ndarray) -> str:
    """The named colour nearest to the mean of the pixels far from the background (the
    median of the outermost pixels, which the shape never covers)."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])  # [124, 3]
    background = np.median(border, axis=0)
    far = np.linalg.norm(pixels - background, axis=-1) > 60
    mean = pixels[far].mean(axis=0)
    return min(COLOURS, key=lambda c: float(np.linalg.norm(mean - COLOUR_RGB[c])))


def image_shape(pixels: np.ndarray, colour: str) -> str:
    """From the mask of the shape's colour: a triangle's top and bottom halves differ in
    width, a square fills its box, a cross's middle rows are much wider than its ends."""
    mask = np.linalg.norm(pixels - np.array(COLOUR_RGB[colour]), axis=-1) < 70
    ys, xs = np.nonzero(mask)
    box = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]  # [h, w]
    widths = box.sum(axis=1)  # [h]
    h = len(widths)
    if abs(widths[: h // 2].mean() - widths[h - h // 2 :].mean()) / box.shape[1] > 0.25:
        return "triangle"
    if box.mean() > 0.88:
        return "square"
    ends = np.r_[widths[: h // 4], widths[-(h // 4) :]].mean()
    return "cross" if widths[h // 3 : 2 * h // 3].mean() > 2.1 * max(ends, 1.0) else "circle"


def audio_colour(wave: np.ndarray) -> str:
    """The pitch band nearest (in log frequency) to the loudest frequency."""
    spectrum = np.abs(np.fft.rfft(wave))
    peak = np.fft.rfftfreq(len(wave), 1 / SAMPLE_RATE)[np.argmax(spectrum)]
    return min(COLOURS, key=lambda c: abs(np.log(peak) - np.log(np.mean(PITCH_BANDS_HZ[c]))).item())


def audio_beeps(wave: np.ndarray) -> int:
    """Bursts of the loudest frequency: band-pass +-10% around it, 5 ms peak envelope,
    count the rises above half its maximum."""
    spectrum = np.fft.rfft(wave)
    freqs = np.fft.rfftfreq(len(wave), 1 / SAMPLE_RATE)
    f0 = freqs[np.argmax(np.abs(spectrum))]
    spectrum[(freqs < 0.9 * f0) | (freqs > 1.1 * f0)] = 0
    tone = np.fft.irfft(spectrum, len(wave))
    frames = np.abs(tone[: len(wave) // 80 * 80]).reshape(-1, 80).max(axis=1)  # [frames]
    on = frames > 0.5 * frames.max()
    return int(on[0]) + int(np.sum(on[1:] & ~on[:-1]))


# --- tests ---------------------------------------------------------------------------


def test_files_columns_and_balance(shapes, rows):
    out, paths = shapes
    assert set(paths) == {"train", "valid", "test"}
    for split, path in paths.items():
        assert path == out / f"{split}.csv"
        with open(path, newline="") as handle:
            assert tuple(next(csv.reader(handle))) == COLUMNS
        split_rows = read_rows(path)
        assert len(split_rows) == SIZES[f"n_{split}"]
        counts = {c: sum(r["concept"] == c for r in split_rows) for c in CONCEPTS}
        assert set(counts.values()) == {len(split_rows) // len(CONCEPTS)}  # every concept
    assert len(CONCEPTS) == 16 and "red triangle" in CONCEPTS
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r[c] for r in rows for c in COLUMNS)  # nothing missing
    assert (out / "README.md").is_file()
    assert len(list((out / "images").glob("*.png"))) == len(rows)
    assert len(list((out / "audio").glob("*.wav"))) == len(rows)


def test_same_seed_same_bytes_other_seed_differs(shapes, tmp_path):
    out, paths = shapes
    again = generate_shapes(tmp_path / "again", seed=0, **SIZES)
    other = generate_shapes(tmp_path / "other", seed=1, **SIZES)
    for split in paths:
        assert again[split].read_bytes() == paths[split].read_bytes()
    assert other["train"].read_bytes() != paths["train"].read_bytes()
    first = read_rows(paths["train"])[0]
    for column in ("image", "audio"):
        assert (tmp_path / "again" / first[column]).read_bytes() == (
            out / first[column]
        ).read_bytes()


def test_files_decode(shapes, rows):
    out, _ = shapes
    for row in rows[:20]:
        with Image.open(out / row["image"]) as image:
            assert image.mode == "RGB" and image.size == (IMAGE_SIZE, IMAGE_SIZE)
        wave, rate = sf.read(out / row["audio"], dtype="float32")
        assert rate == SAMPLE_RATE and wave.shape == (int(SAMPLE_RATE * AUDIO_SECONDS),)
        assert 0.2 < np.abs(wave).max() <= 1.0


def test_the_concept_is_in_the_image(shapes, rows):
    out, _ = shapes
    colours = shapes_right = 0
    for row in rows:
        colour, shape = row["concept"].split()
        pixels = np.asarray(Image.open(out / row["image"]).convert("RGB"), dtype=np.float64)
        colours += image_colour(pixels) == colour
        shapes_right += image_shape(pixels, colour) == shape
    assert colours == len(rows)
    assert shapes_right >= 0.9 * len(rows)  # the crude shape detector is ~98% right


def test_the_concept_is_in_the_audio(shapes, rows):
    out, _ = shapes
    bands = beeps = 0
    for row in rows:
        colour, shape = row["concept"].split()
        wave, _ = sf.read(out / row["audio"], dtype="float64")
        bands += audio_colour(wave) == colour
        beeps += audio_beeps(wave) == BEEPS[shape]
    assert bands == len(rows)
    assert beeps >= 0.95 * len(rows)


def test_the_concept_is_in_the_caption(rows):
    from plait.datasets.shapes import _COLOUR_WORDS, _SHAPE_WORDS

    for row in rows:
        colour, shape = row["concept"].split()
        caption = row["caption"]
        assert any(word in caption for word in _COLOUR_WORDS[colour]), caption
        assert any(word in caption for word in _SHAPE_WORDS[shape]), caption
        others = [c for c in COLOURS if c != colour] + [s for s in SHAPES if s != shape]
        assert not set(others) & set(re.findall(r"[a-z]+", caption)), caption
    assert len({r["caption"] for r in rows}) > len(rows) // 2  # varied phrasing


def test_stale_files_are_removed_and_sizes_checked(tmp_path):
    generate_shapes(tmp_path, n_train=20, n_valid=0, n_test=0)
    generate_shapes(tmp_path, n_train=4, n_valid=0, n_test=0)
    assert len(list((tmp_path / "images").glob("*.png"))) == 4
    assert read_rows(tmp_path / "valid.csv") == []
    for bad in ({"n_train": -1}, {"n_test": 1.5}, {"seed": True}):
        with pytest.raises(ValueError):
            generate_shapes(tmp_path, **bad)
