from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from plait.config import ImageModality
from plait.data.image import ImageProcessor, load_image


def test_exif_rotation_is_applied(media):
    image = load_image(media / "rotated.jpg", max_pixels=10**6)
    assert image.size == (20, 40)  # stored 40x20, displayed rotated 90 degrees
    array = np.asarray(image)
    # rotating clockwise puts the red (left) half on top
    assert array[2, 10, 0] > 200 and array[2, 10, 2] < 60
    assert array[-3, 10, 2] > 200 and array[-3, 10, 0] < 60


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("palette.png", (0, 255, 0)),  # palette index 1 is green
        ("rgba.png", (255, 255, 255)),  # transparent -> white background
        ("cmyk.jpg", (255, 0, 0)),
        ("la.png", (100, 100, 100)),
    ],
)
def test_modes_convert_to_rgb(media, name, expected):
    image = load_image(media / name, max_pixels=10**6)
    assert image.mode == "RGB"
    assert np.abs(np.asarray(image)[4, 4].astype(int) - expected).max() <= 3


def test_16_bit_is_scaled_not_clipped(media):
    image = load_image(media / "gray16.png", max_pixels=10**6, channels=1)
    assert image.mode == "L"
    assert abs(int(np.asarray(image)[0, 0]) - round(30000 / 257)) <= 1


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("corrupt.png", "not a readable image"),
        ("truncated.jpg", "truncated"),
        ("missing.png", "not found"),
    ],
)
def test_bad_files_raise_value_error(media, name, reason):
    with pytest.raises(ValueError, match=reason) as info:
        load_image(media / name, max_pixels=10**6)
    assert name in str(info.value)


def test_decompression_bomb_limit(media):
    with pytest.raises(ValueError, match="max_pixels limit of 100") as info:
        load_image(media / "big.png", max_pixels=100)
    assert "decompression-bomb" in str(info.value)


def test_processor_shape_and_normalisation(media):
    processor = ImageProcessor(ImageModality(column="image", size=8, augment=False))
    raw = processor.load(str(media / "rgba.png"), media)  # all white
    out = processor.transform(raw, train=True, generator=torch.Generator())
    assert out["pixel_values"].shape == (3, 8, 8)
    assert torch.allclose(out["pixel_values"], torch.ones(3, 8, 8))  # (1 - .5) / .5
    assert processor.placeholder()["pixel_values"].shape == (3, 8, 8)


def test_relative_paths_resolve_against_base_dir(media):
    processor = ImageProcessor(ImageModality(column="image", size=8, channels=1))
    raw = processor.load("rgb.png", media)
    out = processor.transform(raw, train=False, generator=torch.Generator())
    assert out["pixel_values"].shape == (1, 8, 8)


def test_augmentation_is_reproducible(media):
    processor = ImageProcessor(ImageModality(column="image", size=16))
    raw = processor.load(str(media / "big.png"), media)

    def run(seed: int) -> torch.Tensor:
        return processor.transform(raw, True, torch.Generator().manual_seed(seed))["pixel_values"]

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
    eval_a = processor.transform(raw, False, torch.Generator().manual_seed(1))
    eval_b = processor.transform(raw, False, torch.Generator().manual_seed(2))
    assert torch.equal(eval_a["pixel_values"], eval_b["pixel_values"])


@pytest.mark.parametrize(
    "array",
    [
        np.full((10, 12), 255, dtype=np.uint8),
        np.ones((10, 12, 3), dtype=np.float32),
        np.full((10, 12, 3), 255.0),
    ],
)
def test_numpy_arrays(array):
    processor = ImageProcessor(ImageModality(column="image", size=8, augment=False))
    out = processor.transform(processor.load(array, None), False, torch.Generator())
    assert torch.allclose(out["pixel_values"], torch.ones(3, 8, 8))


def test_bad_numpy_array():
    processor = ImageProcessor(ImageModality(column="image"))
    with pytest.raises(ValueError, match="HxW"):
        processor.load(np.zeros((2, 3, 4, 5)), None)


def test_hub_image_processor_size_and_stats(tmp_path):
    from transformers import ViTImageProcessor

    ViTImageProcessor(
        size={"height": 24, "width": 24}, image_mean=[0.1, 0.2, 0.3], image_std=[0.5, 0.5, 0.5]
    ).save_pretrained(tmp_path / "hub")
    config = ImageModality(
        column="image", encoder={"type": "huggingface", "model": str(tmp_path / "hub")}
    )
    processor = ImageProcessor(config, hub_model=str(tmp_path / "hub"))
    assert processor.size == 24
    assert processor.mean == pytest.approx([0.1, 0.2, 0.3])
    image = Image.new("RGB", (30, 30), (0, 0, 0))
    out = processor.transform(image, False, torch.Generator())["pixel_values"]
    assert out.shape == (3, 24, 24)
    assert out[1, 0, 0].item() == pytest.approx(-0.4)

    processor.save(tmp_path / "saved")
    restored = ImageProcessor.load_state(tmp_path / "saved")
    assert restored.size == 24 and restored.mean == processor.mean


def test_hub_fallback_when_unloadable(tmp_path):
    config = ImageModality(column="image", encoder={"type": "huggingface", "model": "x/y"})
    with pytest.warns(UserWarning, match="could not load the image processor"):
        processor = ImageProcessor(config, hub_model=str(tmp_path / "nothing-here"))
    assert processor.size == 64 and processor.mean == [0.5] * 3


# ------------------------------------------------------- max_pixels and non-finite pixels


def test_max_pixels_governs_pillows_limit_both_ways(media, monkeypatch):
    # a Pillow whose own limit is tiny: 64x64 = 4096 pixels is over twice 1000, which
    # Pillow alone refuses; a raised `max_pixels` must let it load
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    image = load_image(media / "big.png", max_pixels=10**6)
    assert image.size == (64, 64)
    assert Image.MAX_IMAGE_PIXELS == 1000  # put back: nothing leaks to other code
    # ... and a lowered one refuses what Pillow alone would let through
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**9)
    with pytest.raises(ValueError, match="max_pixels limit of 100"):
        load_image(media / "big.png", max_pixels=100)  # 4096 > twice 100: Pillow's own check
    with pytest.raises(ValueError, match="max_pixels limit of 3000"):
        load_image(media / "big.png", max_pixels=3000)  # between the limit and twice it
    assert Image.MAX_IMAGE_PIXELS == 10**9
    processor = ImageProcessor(ImageModality(column="i", size=16, max_pixels=10**7))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    processor.check(str(media / "big.png"), media)


@pytest.mark.parametrize(("bad", "word"), [(np.nan, "NaN"), (np.inf, "infinite")])
def test_float_image_with_non_finite_pixels_is_refused(tmp_path, bad, word):
    array = np.full((6, 8), 0.5, dtype=np.float32)
    array[4, 3] = bad
    path = tmp_path / "float.tiff"
    Image.fromarray(array).save(path)  # mode F, a 32-bit float TIFF
    with pytest.raises(ValueError, match=f"holds {word} pixels \\(first at x=3, y=4\\)") as info:
        load_image(path, max_pixels=10**6)
    assert str(path) in str(info.value)
    processor = ImageProcessor(ImageModality(column="i", size=16, channels=1))
    with pytest.raises(ValueError, match=word):
        processor.check(str(path), tmp_path)
    # a finite float image and the integer modes (16-bit, 32-bit) still load
    Image.fromarray(np.full((6, 8), 0.5, dtype=np.float32)).save(tmp_path / "ok.tiff")
    assert load_image(tmp_path / "ok.tiff", max_pixels=10**6, channels=1).mode == "L"
    Image.fromarray(np.full((6, 8), 70000, dtype=np.int32)).save(tmp_path / "i32.tiff")
    assert load_image(tmp_path / "i32.tiff", max_pixels=10**6).mode == "RGB"
