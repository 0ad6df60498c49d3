"""Images: robust decoding with Pillow, resizing, normalising and seeded augmentation.

Real-world image folders hold phone photos with EXIF rotation, palette and transparent PNGs,
CMYK JPEGs, 16-bit scans and the odd broken or gigantic file. `load_image` turns all of them
into plain RGB (or L) or a clear reason why not; `ImageProcessor` makes the tensors.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from plait.config import ImageModality
from plait.data.arrays import is_array_cell, load_array_cell
from plait.data.augment import augment_float_image, augment_image, jitter_pixels
from plait.data.processor_base import Processor, resolve_path

_OPEN_LOCK = threading.Lock()
_HIGH_DEPTH = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def load_image(path: str | Path, max_pixels: int, channels: int = 3) -> Image.Image:
    """Decode an image file fully and return it upright as RGB (`channels=3`) or L (1).

    Raises:
        ValueError: missing file, not an image, truncated/corrupt data, or more than
            `max_pixels` pixels (a decompression bomb, or a huge image: raise the limit).
    """
    path = Path(path)
    if not path.is_file():
        raise _ImageError(f"image file not found: {path}")
    try:
        with _pillow_limit(max_pixels):
            # Pillow warns between its limit and twice it; `_check_pixels` refuses instead.
            # catch_warnings is process-global, hence the lock (open only parses the header).
            with _OPEN_LOCK, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                opened = Image.open(path)
            with opened:
                _check_pixels(opened.size, max_pixels, path)
                opened.load()
                _check_finite(opened, path)
                image = ImageOps.exif_transpose(opened) or opened
                image = to_mode(image, channels)
                if image is opened:  # closing `opened` would invalidate its pixel data
                    image = image.copy()
    except _ImageError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's check, at twice `max_pixels`
        raise _ImageError(
            f"image {path} is over the max_pixels limit of {max_pixels} ({exc}; a "
            "decompression-bomb guard: raise `max_pixels` for this modality if the image "
            "is genuine)"
        ) from None
    except Image.UnidentifiedImageError:
        raise _ImageError(f"not a readable image file: {path}") from None
    except (OSError, SyntaxError, EOFError, ValueError, IndexError) as exc:  # corrupt data
        raise _ImageError(f"corrupt or truncated image {path}: {exc}") from None
    return image


class _ImageError(ValueError):
    """A reason already phrased for the user (passed through unchanged)."""


class _pillow_limit:
    """Pillow's own decompression-bomb limit set to `max_pixels` while Plait decodes.

    Pillow checks sizes against a process-wide `Image.MAX_IMAGE_PIXELS` (refusing twice
    it), in `Image.open` and again in some decoders (TIFF tiles, GIF frames), so a
    per-modality `max_pixels` has to set it. While any Plait decode runs the value is the
    largest `max_pixels` in use (each decode still applies its own in `_check_pixels`);
    when the last one ends the value found before is put back, so nothing outlives the
    call.
    """

    _lock = threading.Lock()
    _active: ClassVar[list[int]] = []
    _saved: ClassVar[int | None] = None

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = int(max_pixels)

    def __enter__(self) -> None:
        with self._lock:
            if not self._active:
                _pillow_limit._saved = Image.MAX_IMAGE_PIXELS
            self._active.append(self.max_pixels)
            Image.MAX_IMAGE_PIXELS = max(self._active)

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            self._active.remove(self.max_pixels)
            Image.MAX_IMAGE_PIXELS = max(self._active) if self._active else self._saved


def _check_finite(image: Image.Image, path: Any) -> None:
    """Float images (mode F, e.g. a 32-bit TIFF) may hold NaN or infinite pixels, which
    would train a NaN model; integer modes (8/16/32-bit) cannot."""
    if image.mode != "F":
        return
    array = np.asarray(image)
    finite = np.isfinite(array)
    if finite.all():
        return
    y, x = np.unravel_index(int(np.argmin(finite)), finite.shape)
    kind = "NaN" if np.isnan(array[y, x]) else "infinite"
    raise _ImageError(f"image {path} holds {kind} pixels (first at x={x}, y={y})")


def _check_pixels(size: tuple[int, int], max_pixels: int, path: Any) -> None:
    width, height = size
    if width * height > max_pixels:
        raise _ImageError(
            f"image {path} is {width}x{height} = {width * height} pixels, over the "
            f"max_pixels limit of {max_pixels} (a decompression-bomb guard; raise "
            f"`max_pixels` for this modality if the image is genuine)"
        )


def to_mode(image: Image.Image, channels: int = 3) -> Image.Image:
    """Any Pillow mode -> RGB or L. Transparency is composited on white; 16-bit and float
    images are scaled to 8 bits rather than clipped (Pillow's own convert would clip)."""
    target = "RGB" if channels == 3 else "L"
    if image.mode in _HIGH_DEPTH:
        array = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            scale = 255.0 if array.size and np.nanmax(array) <= 1.0 else 1.0
        else:
            peak = float(array.max()) if array.size else 0.0
            scale = 1.0 / 257.0 if peak > 255 else 1.0
        array = np.clip(np.nan_to_num(array * scale), 0, 255).astype(np.uint8)
        image = Image.fromarray(array, mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image if image.mode == target else image.convert(target)


def array_to_image(array: np.ndarray, channels: int = 3) -> Image.Image:
    """An in-memory HxW or HxWxC array (uint8 0-255, or float in 0-1 or 0-255) -> image."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"image array must be HxW or HxWxC (C = 1, 3 or 4), got {array.shape}")
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            raise ValueError("image array contains NaN or infinite values")
        if array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    mode = "L" if array.ndim == 2 else ("RGB" if array.shape[-1] == 3 else "RGBA")
    return to_mode(Image.fromarray(array, mode=mode), channels)


def image_from_array_cell(array: np.ndarray, channels: int, cell: str = "") -> Any:
    """One row of an array cell (`file.npy#row`) -> what `ImageProcessor.transform` reads.

    A uint8 array (H x W or H x W x C, C = 1, 3 or 4) is pixel data: it becomes a Pillow
    image and is treated exactly like a decoded image file. A float array is taken as it is (no /255):
    float32 [H, W, channels]. One channel is repeated to three, three are mixed to one
    with the ITU-R 601 luma weights (as Pillow's "L" conversion).

    Raises:
        ValueError: wrong rank, channel count or dtype, or NaN / infinite values.
    """
    where = f"array cell {cell!r}: " if cell else ""
    if array.dtype == np.uint8:
        try:
            return array_to_image(array, channels)
        except ValueError as exc:
            raise ValueError(f"{where}{exc}") from None
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise ValueError(
            f"{where}a float image row must be H x W or H x W x C (C = 1 or 3), got shape "
            f"{tuple(array.shape)}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{where}image rows must be uint8 or float, got {array.dtype}")
    values = np.asarray(array, dtype=np.float32)
    if not np.isfinite(values).all():
        raise ValueError(f"{where}image row contains NaN or infinite values")
    if values.ndim == 2:
        values = values[..., None]
    if values.shape[-1] != channels:
        if channels == 3:
            values = np.repeat(values, 3, axis=-1)
        else:
            luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
            values = (values @ luma)[..., None]
    return np.ascontiguousarray(values)  # [H, W, channels]


class ImageProcessor(Processor):
    """Image cell -> {"pixel_values": [C, size, size] float}, normalised by mean/std.

    Scratch encoders use `config.size`, `config.mean`/`config.std` (default 0.5/0.5). A hub
    encoder's own size and mean/std are read from its `AutoImageProcessor` (falling back to
    the config when it cannot be loaded) and kept in the saved state.
    Training-time augmentation: the transforms of `config.augment` in list order, all drawn
    from the generator (`plait.data.augment`); colour factors are applied to the 0-1
    pixels after the geometry, then clamped. The default is a random resized crop (scale
    0.8-1, aspect 3/4-4/3) and brightness x U(0.9, 1.1); `augment: true` adds the
    horizontal flip it always had.

    Array cells (`file.npy#row`, see `plait.data.arrays`): a uint8 row is pixel data and
    goes exactly the way of a decoded image file. A float row (H x W or H x W x C) is
    used as it is: no /255, no clamping, resized to `size` (bilinear, antialiased) only
    when it is not already that size, and normalised with `mean`/`std` only when the
    config sets them (no 0.5 default: float rows are usually already scaled, such as the
    centred PCA digits of AV-MNIST). Augmentation of float rows: the same crop and flips,
    no colour transform.
    """

    kind = "image"

    def __init__(self, config: ImageModality, hub_model: str | None = None) -> None:
        super().__init__(config, hub_model)
        self.hub_processor: Any = None
        self.channels: int = config.channels
        self.size = config.size
        default = [0.5] * self.channels
        self.mean = list(config.mean or default)
        self.std = list(config.std or default)
        if hub_model:
            self.channels = 3
            self._read_hub(hub_model)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            if len(self.mean) == 1 and len(self.std) == 1:
                self.mean, self.std = self.mean * self.channels, self.std * self.channels
            else:
                raise ValueError(
                    f"image column '{config.column}': mean/std need {self.channels} values"
                )

    def _read_hub(self, model: str) -> None:
        try:
            from transformers import AutoImageProcessor

            self.hub_processor = AutoImageProcessor.from_pretrained(model)
        except Exception as exc:  # offline, no image processor in the repo, ...
            warnings.warn(
                f"could not load the image processor of '{model}' ({exc}); using size "
                f"{self.size} and mean/std from the config",
                stacklevel=2,
            )
            if self.config.mean is None:
                self.mean, self.std = [0.5] * 3, [0.5] * 3
            return
        hub = self.hub_processor
        size = _hub_size(getattr(hub, "crop_size", None)) or _hub_size(getattr(hub, "size", None))
        self.size = size or self.size
        mean, std = getattr(hub, "image_mean", None), getattr(hub, "image_std", None)
        if mean is not None and std is not None and getattr(hub, "do_normalize", True):
            self.mean = [float(v) for v in np.broadcast_to(mean, (3,))]
            self.std = [float(v) for v in np.broadcast_to(std, (3,))]

    # --------------------------------------------------------------------- per sample
    def load(self, value: Any, base_dir: Path) -> Image.Image | np.ndarray:
        if isinstance(value, np.ndarray):
            return array_to_image(value, self.channels)
        if is_array_cell(value):
            return image_from_array_cell(load_array_cell(value, base_dir), self.channels, value)
        return load_image(resolve_path(value, base_dir), self.config.max_pixels, self.channels)

    def transform(
        self, raw: Image.Image | np.ndarray, train: bool, generator: torch.Generator
    ) -> dict[str, Tensor]:
        if isinstance(raw, np.ndarray):
            return {"pixel_values": self._float_pixels(raw, train, generator)}
        colours: list[tuple[float, float]] = []
        if train and self.config.augment:
            image, colours = augment_image(raw, self.size, self.config.augment, generator)
        else:
            image = raw.resize((self.size, self.size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0  # [H, W] or [H, W, C]
        pixels = torch.from_numpy(array.copy()).reshape(self.size, self.size, self.channels)
        pixels = jitter_pixels(pixels.permute(2, 0, 1), colours)  # [C, H, W], clamped to 0-1
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return {"pixel_values": (pixels - mean) / std}

    def _float_pixels(self, raw: np.ndarray, train: bool, generator: torch.Generator) -> Tensor:
        """A float array-cell row [H, W, C] -> [C, size, size], used as it is (see class doc)."""
        pixels = torch.from_numpy(raw).permute(2, 0, 1)  # [C, H, W]
        if train and self.config.augment:
            pixels = augment_float_image(pixels, self.config.augment, generator)
        if tuple(pixels.shape[1:]) != (self.size, self.size):
            pixels = F.interpolate(
                pixels[None],
                size=(self.size, self.size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )[0]
        if self.config.mean is not None or self.config.std is not None:
            mean = torch.tensor(self.mean).view(-1, 1, 1)
            std = torch.tensor(self.std).view(-1, 1, 1)
            pixels = (pixels - mean) / std
        return pixels.contiguous()  # [C, size, size]

    def placeholder(self) -> dict[str, Tensor]:
        return {"pixel_values": torch.zeros(self.channels, self.size, self.size)}

    # ---------------------------------------------------------------- save / restore
    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "channels": self.channels, "mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size = int(state.get("size", self.size))
        self.channels = int(state.get("channels", self.channels))
        self.mean = list(state.get("mean", self.mean))
        self.std = list(state.get("std", self.std))

    def _hub_object(self) -> Any:
        return self.hub_processor


def _hub_size(size: Any) -> int | None:
    """A hub processor's size (int, dict or SizeDict) -> one square side, or None."""
    if size is None:
        return None
    if isinstance(size, int):
        return size
    get = size.get if isinstance(size, dict) else lambda k: getattr(size, k, None)
    for key in ("height", "shortest_edge", "width"):
        value = get(key)
        if value:
            return int(value)
    return None
