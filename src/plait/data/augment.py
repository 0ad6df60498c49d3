"""Training-time augmentation: the code of each named transform of `augment:` lists.

The names and settings live in `plait.config` (`TRANSFORM_MODELS`: a typo fails when the
YAML is read); this module applies them, in list order, drawing every random number from
the generator the dataset seeds from (seed, epoch, row), so a run reproduces exactly.
A transform with `p` strictly between 0 and 1 draws one number to decide whether it
applies; `p: 1` and `p: 0` draw nothing for that decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

IMAGE_TRANSFORMS = ("random_resized_crop", "hflip", "vflip", "color_jitter")
"""Names `augment_image` / `augment_float_image` apply (the contract test checks the table)."""

AUDIO_WAVE_TRANSFORMS = ("time_shift", "gain")
"""Names `augment_wave` applies to the cropped waveform."""

AUDIO_FEATURE_TRANSFORMS = ("spec_augment",)
"""Names `augment_features` applies to scratch log-mel features [n_mels, frames]."""


def uniform(generator: torch.Generator) -> float:
    """One draw of U(0, 1) from `generator`."""
    return float(torch.rand((), generator=generator))


def applies(transform: Any, generator: torch.Generator) -> bool:
    """Whether `transform` applies this time (see the module doc for what `p` draws)."""
    if transform.p <= 0.0:
        return False
    return transform.p >= 1.0 or uniform(generator) < transform.p


def random_box(
    size: tuple[int, int],
    generator: torch.Generator,
    scale: Sequence[float] = (0.8, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
) -> tuple[float, float, float, float]:
    """A crop box (left, top, right, bottom) covering `scale` of the area with its aspect
    ratio log-uniform in `ratio`, clipped to the image. The span is rounded to 12 places so
    that (0.8, 1.0) draws exactly what the one-switch augmentation drew (0.8 + 0.2 u)."""
    width, height = size
    low, high = scale
    area = width * height * (low + round(high - low, 12) * uniform(generator))
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = math.exp(log_low + (log_high - log_low) * uniform(generator))
    w = min(width, math.sqrt(area * aspect))
    h = min(height, math.sqrt(area / aspect))
    left = (width - w) * uniform(generator)
    top = (height - h) * uniform(generator)
    return (left, top, left + w, top + h)


def _factor(amount: float, generator: torch.Generator) -> float:
    """U(1 - amount, 1 + amount), written as the one-switch brightness was (0.9 + 0.2 u)."""
    return (1.0 - amount) + 2.0 * amount * uniform(generator) if amount > 0 else 1.0


def augment_image(
    image: Image.Image, size: int, transforms: Sequence[Any], generator: torch.Generator
) -> tuple[Image.Image, list[tuple[float, float]]]:
    """Apply the geometric transforms to a pixel image, in list order, and resize it to
    `size` x `size`. The colour transforms' (brightness, contrast) factors are drawn in
    their list place and returned for `jitter_pixels`, which applies them to the tensor."""
    colours: list[tuple[float, float]] = []
    for transform in transforms:
        if not applies(transform, generator):
            continue
        if transform.name == "random_resized_crop":
            box = random_box(image.size, generator, transform.scale, transform.ratio)
            image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
        elif transform.name == "hflip":
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif transform.name == "vflip":
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        elif transform.name == "color_jitter":
            brightness = _factor(transform.brightness, generator)
            colours.append((brightness, _factor(transform.contrast, generator)))
        else:
            raise ValueError(f"not an image transform: {transform.name!r}")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return image, colours


def jitter_pixels(pixels: Tensor, colours: Sequence[tuple[float, float]]) -> Tensor:
    """[C, H, W] pixels in 0-1: times each brightness factor, contrast scaled about the
    image's mean, then clamped to 0-1 (as before: the clamp is always applied)."""
    for brightness, contrast in colours:
        pixels = pixels * brightness
        if contrast != 1.0:
            mean = pixels.mean()
            pixels = (pixels - mean) * contrast + mean
    return pixels.clamp_(0.0, 1.0)


def augment_float_image(
    pixels: Tensor, transforms: Sequence[Any], generator: torch.Generator
) -> Tensor:
    """A float array row [C, H, W]: crop (cut out, not yet resized) and flips in list
    order; colour transforms are skipped and draw nothing (the row has no pixel scale)."""
    for transform in transforms:
        if transform.name == "color_jitter":
            continue
        if not applies(transform, generator):
            continue
        if transform.name == "random_resized_crop":
            height, width = pixels.shape[1:]
            box = random_box((width, height), generator, transform.scale, transform.ratio)
            left, top, right, bottom = box
            x0, y0 = min(int(left), width - 1), min(int(top), height - 1)
            x1 = max(x0 + 1, min(width, math.ceil(right)))
            y1 = max(y0 + 1, min(height, math.ceil(bottom)))
            pixels = pixels[:, y0:y1, x0:x1]
        elif transform.name == "hflip":
            pixels = pixels.flip(-1)
        elif transform.name == "vflip":
            pixels = pixels.flip(-2)
        else:
            raise ValueError(f"not an image transform: {transform.name!r}")
    return pixels


def augment_wave(
    wave: np.ndarray, sample_rate: int, transforms: Sequence[Any], generator: torch.Generator
) -> np.ndarray:
    """A cropped waveform: `time_shift` and `gain` in list order (same length out)."""
    for transform in transforms:
        if transform.name not in AUDIO_WAVE_TRANSFORMS or not applies(transform, generator):
            continue
        if transform.name == "time_shift":
            limit = round(transform.max_seconds * sample_rate)
            shift = int(torch.randint(-limit, limit + 1, (), generator=generator))
            wave = _shift(wave, shift)
        else:  # gain
            decibels = transform.db * (2.0 * uniform(generator) - 1.0)
            wave = (wave * 10.0 ** (decibels / 20.0)).astype(np.float32)
    return wave


def _shift(wave: np.ndarray, shift: int) -> np.ndarray:
    """`wave` moved `shift` samples later (earlier when negative), silence filling the gap."""
    out = np.zeros_like(wave)
    if abs(shift) >= len(wave):
        return out
    if shift >= 0:
        out[shift:] = wave[: len(wave) - shift]
    else:
        out[:shift] = wave[-shift:]
    return out


def augment_features(
    features: Tensor, transforms: Sequence[Any], generator: torch.Generator
) -> Tensor:
    """Scratch log-mel features [n_mels, frames]: `spec_augment` in list order."""
    for transform in transforms:
        if transform.name not in AUDIO_FEATURE_TRANSFORMS or not applies(transform, generator):
            continue
        features = spec_augment(
            features,
            transform.time_masks,
            transform.freq_masks,
            generator,
            time_width=transform.time_width,
            freq_width=transform.freq_width,
        )
    return features


def spec_augment(
    features: Tensor,
    time_masks: int,
    freq_masks: int,
    generator: torch.Generator,
    time_width: float = 0.1,
    freq_width: float = 0.1,
) -> Tensor:
    """Zero random bands of [n_mels, frames] features: `time_masks` bands of frames, each up
    to `time_width` of the frames, then `freq_masks` bands of up to `freq_width` of the bins."""
    out = features.clone()
    for axis, count, fraction in ((1, time_masks, time_width), (0, freq_masks, freq_width)):
        length = out.shape[axis]
        max_width = max(1, int(fraction * length))
        for _ in range(count):
            width = int(torch.randint(0, max_width + 1, (), generator=generator))
            start = int(torch.randint(0, max(1, length - width + 1), (), generator=generator))
            if axis == 1:
                out[:, start : start + width] = 0.0
            else:
                out[start : start + width, :] = 0.0
    return out
