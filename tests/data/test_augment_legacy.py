"""`augment: true` keeps meaning exactly what it meant before augmentation became a list.

The functions below are a frozen copy of the image augmentation as it was when `augment`
was one switch (random resized crop 0.8-1, aspect 3/4-4/3, horizontal flip p 0.5,
brightness x U(0.9, 1.1); float array rows: crop and flip only). Saved configs and runs with
`augment: true` must give the same tensors, bit for bit, for the same generator.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from plait.config import ImageModality
from plait.data.image import ImageProcessor


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator))


def _old_box(size: tuple[int, int], generator: torch.Generator) -> tuple[float, ...]:
    width, height = size
    area = width * height * (0.8 + 0.2 * _uniform(generator))
    ratio = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * _uniform(generator))
    w = min(width, math.sqrt(area * ratio))
    h = min(height, math.sqrt(area / ratio))
    left = (width - w) * _uniform(generator)
    top = (height - h) * _uniform(generator)
    return (left, top, left + w, top + h)


def _old_image(raw: Image.Image, size: int, channels: int, generator: torch.Generator):
    box = _old_box(raw.size, generator)
    image = raw.resize((size, size), Image.Resampling.BILINEAR, box=box)
    if _uniform(generator) < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    brightness = 0.9 + 0.2 * _uniform(generator)
    array = np.asarray(image, dtype=np.float32) / 255.0
    pixels = torch.from_numpy(array.copy()).reshape(size, size, channels)
    pixels = (pixels.permute(2, 0, 1) * brightness).clamp_(0.0, 1.0)
    mean = torch.tensor([0.5] * channels).view(-1, 1, 1)
    return (pixels - mean) / mean


def _old_float(raw: np.ndarray, size: int, generator: torch.Generator) -> torch.Tensor:
    pixels = torch.from_numpy(raw).permute(2, 0, 1)
    height, width = pixels.shape[1:]
    left, top, right, bottom = _old_box((width, height), generator)
    x0, y0 = min(int(left), width - 1), min(int(top), height - 1)
    x1 = max(x0 + 1, min(width, math.ceil(right)))
    y1 = max(y0 + 1, min(height, math.ceil(bottom)))
    pixels = pixels[:, y0:y1, x0:x1]
    if _uniform(generator) < 0.5:
        pixels = pixels.flip(-1)
    if tuple(pixels.shape[1:]) != (size, size):
        pixels = F.interpolate(
            pixels[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )[0]
    return pixels.contiguous()


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_true_reproduces_the_old_image_tensors(media, channels):
    processor = ImageProcessor(ImageModality(column="i", size=16, channels=channels, augment=True))
    raw = processor.load(str(media / "big.png"), media)
    flipped = 0
    for seed in range(40):
        new = processor.transform(raw, True, torch.Generator().manual_seed(seed))["pixel_values"]
        old = _old_image(raw, 16, channels, torch.Generator().manual_seed(seed))
        assert torch.equal(new, old), f"seed {seed}"
        flipped += _uniform(_skip(torch.Generator().manual_seed(seed), 4)) < 0.5
    assert 5 < flipped < 35  # the seeds cover flipped and unflipped draws


def _skip(generator: torch.Generator, draws: int) -> torch.Generator:
    for _ in range(draws):
        _uniform(generator)
    return generator


def test_augment_true_reproduces_the_old_float_rows():
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((20, 24, 3)).astype(np.float32)
    processor = ImageProcessor(ImageModality(column="i", size=12, augment=True))
    for seed in range(20):
        new = processor.transform(raw, True, torch.Generator().manual_seed(seed))["pixel_values"]
        assert torch.equal(new, _old_float(raw, 12, torch.Generator().manual_seed(seed)))
