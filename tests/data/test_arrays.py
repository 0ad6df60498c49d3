"""Array cells (`file.npy#row`): parsing, cached memory maps, errors, and the image and
audio processors' handling of them."""

from __future__ import annotations

import multiprocessing
import os
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from plait.config import AudioModality, ImageModality
from plait.data import arrays
from plait.data.arrays import (
    is_array_cell,
    load_array_cell,
    open_array,
    parse_array_cell,
)
from plait.data.audio import AudioProcessor
from plait.data.image import ImageProcessor, array_to_image
from plait.data.prepare import prepare_data
from plait.errors import DataError


@pytest.fixture()
def grid(tmp_path):
    """sub/grid.npy: 5 rows of 4x6 float32, row i filled with i + position / 100."""
    (tmp_path / "sub").mkdir()
    values = np.arange(5 * 4 * 6, dtype=np.float32).reshape(5, 4, 6) / 100
    values += np.arange(5, dtype=np.float32)[:, None, None]
    np.save(tmp_path / "sub" / "grid.npy", values)
    return tmp_path, values


# ------------------------------------------------------------------------ the cells


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("a/b.npy#17", ("a/b.npy", 17)),
        (" x.NPY#0 ", ("x.NPY", 0)),
        ("/abs/y.npy# 3", ("/abs/y.npy", 3)),
    ],
)
def test_parse(cell, expected):
    assert is_array_cell(cell)
    assert parse_array_cell(cell) == expected


@pytest.mark.parametrize("cell", ["a.png", "a.npy", "a.npz#1", "", None, 3.0, "a#1"])
def test_not_array_cells(cell):
    assert not is_array_cell(cell)


@pytest.mark.parametrize("cell", ["a.npy#", "a.npy#x", "a.npy#-1", "a.npy#1.5"])
def test_bad_row_is_a_clear_error(cell):
    assert is_array_cell(cell)
    with pytest.raises(ValueError, match="non-negative integer"):
        parse_array_cell(cell)


def test_load_row_relative_to_base_dir(grid):
    base, values = grid
    row = load_array_cell("sub/grid.npy#3", base)
    assert row.shape == (4, 6) and row.dtype == np.float32
    assert np.array_equal(row, values[3])
    assert not isinstance(row, np.memmap) and row.flags.writeable  # a copy, not the map


def test_cache_is_reused_and_notices_rewrites(grid):
    base, values = grid
    path = base / "sub" / "grid.npy"
    first = open_array(path)
    assert isinstance(first, np.memmap)
    assert open_array(path) is first
    np.save(path, values[:2] * 0 - 1)  # rewritten in place: size and mtime change
    assert load_array_cell("sub/grid.npy#1", base).max() == -1
    with pytest.raises(ValueError, match="out of range"):
        load_array_cell("sub/grid.npy#3", base)


def test_errors_name_the_problem(grid, tmp_path):
    base, _ = grid
    with pytest.raises(ValueError, match="row 5 is out of range.*5 rows"):
        load_array_cell("sub/grid.npy#5", base)
    with pytest.raises(ValueError, match="array file not found"):
        load_array_cell("sub/missing.npy#0", base)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cannot read array file"):
        load_array_cell("objects.npy#0", tmp_path)
    (tmp_path / "junk.npy").write_bytes(b"not an array at all")
    with pytest.raises(ValueError, match="cannot read array file"):
        load_array_cell("junk.npy#0", tmp_path)
    np.save(tmp_path / "scalar.npy", np.float32(3))
    with pytest.raises(ValueError, match="single value"):
        load_array_cell("scalar.npy#0", tmp_path)


def _read_in_child(args):
    cell, base = args
    return os.getpid(), float(load_array_cell(cell, base).sum())


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_forked_worker_opens_its_own_map(grid):
    base, values = grid
    open_array(base / "sub" / "grid.npy")  # the parent has it cached
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        pid, total = pool.map(_read_in_child, [("sub/grid.npy#2", str(base))])[0]
    assert pid != os.getpid()
    assert total == pytest.approx(float(values[2].sum()))
    assert arrays._cache_pid == os.getpid()


# ---------------------------------------------------------------------------- image


def test_float_image_row_is_used_as_is(tmp_path):
    square = np.random.default_rng(3).standard_normal((3, 8, 8)).astype(np.float32) * 3
    np.save(tmp_path / "square.npy", square)
    processor = ImageProcessor(ImageModality(column="x", channels=1, size=8, augment=False))
    raw = processor.load("square.npy#2", tmp_path)
    out = processor.transform(raw, train=False, generator=torch.Generator())["pixel_values"]
    assert out.shape == (1, 8, 8)
    assert torch.equal(out[0], torch.from_numpy(square[2]))  # no /255, no 0.5 default


def test_float_image_row_resized_and_normalised_when_asked(grid):
    base, values = grid
    plain = ImageProcessor(ImageModality(column="x", channels=1, size=8, augment=False))
    out = plain.transform(plain.load("sub/grid.npy#1", base), False, torch.Generator())
    assert out["pixel_values"].shape == (1, 8, 8)
    low, high = float(values[1].min()), float(values[1].max())  # bilinear: no overshoot
    assert low - 1e-5 <= out["pixel_values"].min() and out["pixel_values"].max() <= high + 1e-5
    normed = ImageProcessor(
        ImageModality(column="x", channels=1, size=8, augment=False, mean=[1.0], std=[0.5])
    )
    scaled = normed.transform(normed.load("sub/grid.npy#1", base), False, torch.Generator())
    assert torch.allclose(scaled["pixel_values"], (out["pixel_values"] - 1.0) / 0.5)


def test_float_image_channels_and_augmentation(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "rgb.npy", rng.random((3, 10, 10, 3), dtype=np.float32) * 4 - 2)
    rgb = ImageProcessor(ImageModality(column="x", channels=3, size=10))
    raw = rgb.load("rgb.npy#0", tmp_path)
    plain = rgb.transform(raw, False, torch.Generator())["pixel_values"]
    assert plain.shape == (3, 10, 10) and plain.min() < -1 and plain.max() > 1  # not clamped
    one = ImageProcessor(ImageModality(column="x", channels=1, size=10))
    gray = one.transform(one.load("rgb.npy#0", tmp_path), False, torch.Generator())
    luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    assert torch.allclose(gray["pixel_values"][0], (plain * luma).sum(0), atol=1e-5)
    a = rgb.transform(raw, True, torch.Generator().manual_seed(1))["pixel_values"]
    b = rgb.transform(raw, True, torch.Generator().manual_seed(1))["pixel_values"]
    assert a.shape == (3, 10, 10) and torch.equal(a, b)


def test_uint8_image_row_goes_the_way_of_image_files(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (2, 12, 12, 3), dtype=np.uint8)
    np.save(tmp_path / "pixels.npy", pixels)
    processor = ImageProcessor(ImageModality(column="x", size=8, augment=False))
    raw = processor.load("pixels.npy#1", tmp_path)
    from_cell = processor.transform(raw, False, torch.Generator())
    from_image = processor.transform(array_to_image(pixels[1]), False, torch.Generator())
    assert torch.equal(from_cell["pixel_values"], from_image["pixel_values"])
    assert from_cell["pixel_values"].min() >= -1.0  # default 0.5 / 0.5 normalisation


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.zeros((2, 3, 4, 4, 1), np.float32), "H x W or H x W x C"),
        (np.zeros((2, 4, 4), np.int64), "uint8 or float"),
        (np.full((2, 4, 4), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_image_rows(tmp_path, array, reason):
    np.save(tmp_path / "bad.npy", array)
    processor = ImageProcessor(ImageModality(column="x", channels=1, size=8))
    with pytest.raises(ValueError, match=reason) as info:
        processor.load("bad.npy#0", tmp_path)
    assert "bad.npy#0" in str(info.value)


# ---------------------------------------------------------------------------- audio


def test_precomputed_spectrogram(tmp_path):
    rng = np.random.default_rng(2)
    specs = (rng.standard_normal((3, 16, 20)) * 10 - 40).astype(np.float16)
    np.save(tmp_path / "specs.npy", specs)
    config = AudioModality(column="a", n_mels=16, spec_augment=True, time_masks=2, freq_masks=2)
    processor = AudioProcessor(config)
    raw = processor.load("specs.npy#1", tmp_path)
    assert raw.shape == (16, 20) and raw.dtype == np.float32
    out = processor.transform(raw, train=False, generator=torch.Generator())["features"]
    assert out.shape == (1, 16, 20)
    assert abs(out.mean().item()) < 1e-4 and abs(out.std().item() - 1) < 1e-2
    expected = (raw - raw.mean()) / (raw.std(ddof=1) + 1e-5)
    assert np.allclose(out[0].numpy(), expected, atol=1e-4)
    augmented = processor.transform(raw, True, torch.Generator().manual_seed(3))["features"]
    again = processor.transform(raw, True, torch.Generator().manual_seed(3))["features"]
    assert torch.equal(augmented, again)
    assert (augmented == 0).sum() > (out == 0).sum()  # SpecAugment zeroed bands


def test_spectrogram_bins_must_match_n_mels(tmp_path):
    np.save(tmp_path / "specs.npy", np.zeros((2, 16, 20), np.float32))
    processor = AudioProcessor(AudioModality(column="a", n_mels=64))
    with pytest.raises(ValueError, match="16 frequency rows but `n_mels` is 64"):
        processor.check("specs.npy#0", tmp_path)


def test_waveform_row_matches_in_memory_waveform(tmp_path):
    rate = 8000
    waves = np.sin(np.arange(2 * rate) / rate * 2 * np.pi * np.array([[300.0], [900.0]]))
    np.save(tmp_path / "waves.npy", waves.astype(np.float32))
    config = AudioModality(column="a", sample_rate=rate, duration=1.0, n_mels=32, n_fft=256)
    processor = AudioProcessor(config)
    from_cell = processor.load("waves.npy#1", tmp_path)
    assert from_cell.ndim == 1 and len(from_cell) == 2 * rate
    in_memory = processor.load(waves[1].astype(np.float32), tmp_path)
    a = processor.transform(from_cell, False, torch.Generator())["features"]
    b = processor.transform(in_memory, False, torch.Generator())["features"]
    assert torch.equal(a, b) and a.shape == processor.placeholder()["features"].shape


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.zeros((2, 3, 4, 5), np.float32), "1-D waveform or a 2-D spectrogram"),
        (np.full((2, 8), np.inf, np.float32), "NaN or infinite"),
        (np.zeros((2, 0), np.float32), "empty"),
    ],
)
def test_bad_audio_rows(tmp_path, array, reason):
    np.save(tmp_path / "bad.npy", array)
    processor = AudioProcessor(AudioModality(column="a"))
    with pytest.raises(ValueError, match=reason):
        processor.check("bad.npy#1", tmp_path)


# ------------------------------------------------------------------ the data layer


def test_manifest_of_array_cells(tmp_path, make_config):
    rng = np.random.default_rng(4)
    np.save(tmp_path / "images.npy", rng.standard_normal((12, 8, 8)).astype(np.float32))
    np.save(tmp_path / "specs.npy", rng.standard_normal((12, 16, 10)).astype(np.float16))
    rows = pd.DataFrame(
        {
            "image": [f"images.npy#{i}" for i in range(12)],
            "audio": [f"specs.npy#{i}" for i in range(12)],
            "label": ["a", "b"] * 6,
        }
    )
    rows.loc[3, "image"] = "images.npy#12"
    rows.loc[5, "audio"] = "nowhere.npy#0"
    rows.loc[7, "image"] = "images.npy#two"
    rows.to_csv(tmp_path / "train.csv", index=False)
    modalities = {
        "image": {"kind": "image", "column": "image", "channels": 1, "size": 8},
        "audio": {"kind": "audio", "column": "audio", "n_mels": 16},
    }
    config = make_config(
        tmp_path / "train.csv", modalities, data={"split": {"valid": 0.0, "test": 0.0}}
    )
    with pytest.raises(DataError) as info:
        prepare_data(config)
    found = {(p.row, p.column): p.reason for p in info.value.problems}
    assert set(found) == {(4, "image"), (6, "audio"), (8, "image")}
    assert "out of range" in found[(4, "image")]
    assert "array file not found" in found[(6, "audio")]
    assert "non-negative integer" in found[(8, "image")]

    skip = config.model_copy(update={"data": config.data.model_copy(update={"on_error": "skip"})})
    prepared = prepare_data(skip)
    sample = prepared.train[0]
    assert sample["inputs"]["image"]["pixel_values"].shape == (1, 8, 8)
    assert sample["inputs"]["audio"]["features"].shape == (1, 16, 10)
    assert len(prepared.train) == 9


def test_non_finite_array_cells_are_row_problems_naming_the_value(tmp_path, make_config):
    images = np.zeros((6, 4, 4), np.float64)
    images[2, 1, 3] = np.nan
    waves = np.zeros((6, 4000), np.float32)
    waves[4, 1234] = -np.inf
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "waves.npy", waves)
    with pytest.raises(ValueError, match=r"NaN or infinite values \(first: nan at index \(1, 3\)"):
        load_array_cell("images.npy#2", tmp_path)
    with pytest.raises(ValueError, match=r"first: -inf at index 1234\)"):
        load_array_cell("waves.npy#4", tmp_path)

    rows = pd.DataFrame(
        {
            "image": [f"images.npy#{i}" for i in range(6)],
            "audio": [f"waves.npy#{i}" for i in range(6)],
            "label": ["a", "b"] * 3,
        }
    )
    rows.to_csv(tmp_path / "train.csv", index=False)
    modalities = {
        "image": {"kind": "image", "column": "image", "channels": 1, "size": 8},
        "audio": {"kind": "audio", "column": "audio", "sample_rate": 8000, "duration": 0.5},
    }
    config = make_config(
        tmp_path / "train.csv", modalities, data={"split": {"valid": 0.0, "test": 0.0}}
    )
    with pytest.raises(DataError) as info:
        prepare_data(config)
    found = {(p.row, p.column): p.reason for p in info.value.problems}
    assert set(found) == {(3, "image"), (5, "audio")}
    assert "'images.npy#2'" in found[(3, "image")] and "index (1, 3)" in found[(3, "image")]
    assert "'waves.npy#4'" in found[(5, "audio")] and "index 1234" in found[(5, "audio")]
