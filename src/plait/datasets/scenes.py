"""Scenes of several coloured shapes: what the captioning and question-answering data draw.

A `Scene` is the ground truth (each object's colour, shape, size and position); the
builders turn it into pictures (`render_scene`) and into words (captions, questions), so
every sentence they write is true of its picture by construction. Objects never overlap
and keep a margin from each other and from the border, so "left of" and "above" are
visible, and a small object is at most 0.6 of a large one's size.

Everything is drawn from the `numpy.random.Generator` it is given: the same stream gives
the same scene and the same pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "COLOURS",
    "COLOUR_RGB",
    "SHAPES",
    "SIZES",
    "Scene",
    "SceneObject",
    "place_box",
    "render_scene",
    "sample_scene",
    "shape_outline",
]

COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "white")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
SIZES: tuple[str, ...] = ("small", "large")
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 35),
    "green": (40, 170, 60),
    "blue": (45, 85, 225),
    "yellow": (235, 205, 35),
    "purple": (150, 60, 190),
    "white": (245, 245, 245),
}
# object size as a fraction of the image side
_EXTENT = {"small": (0.16, 0.20), "large": (0.28, 0.34)}
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class SceneObject:
    """One shape: its attributes and its box (fractions of the image side, 0..1)."""

    colour: str
    shape: str
    size: str  # "small" | "large"
    x: float  # left edge
    y: float  # top edge
    extent: float  # width = height

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.extent / 2, self.y + self.extent / 2

    @property
    def name(self) -> str:
        """`small red circle`: how a caption names it."""
        return f"{self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]

    def describe(self) -> str:
        """A machine-readable line for the data's `objects` column:
        `small red circle@0.31,0.52;large blue square@0.70,0.25` (centres, x then y)."""
        return ";".join(f"{o.name}@{o.centre[0]:.2f},{o.centre[1]:.2f}" for o in self.objects)


def sample_scene(
    rng: np.random.Generator,
    count: int,
    allowed: Callable[[str, str], bool] = lambda colour, shape: True,
    *,
    distinct: bool = True,
    tries: int = 200,
) -> Scene:
    """`count` non-overlapping objects whose (colour, shape) pairs pass `allowed`.

    `distinct` keeps every (colour, shape) pair once per scene, so a caption naming "the
    red circle" names one object.
    """
    pairs = [(c, s) for c in COLOURS for s in SHAPES if allowed(c, s)]
    if len(pairs) < (count if distinct else 1):
        raise ValueError(f"only {len(pairs)} colour-shape pairs are allowed; need {count}")
    for _ in range(tries):
        chosen = rng.choice(len(pairs), size=count, replace=not distinct)
        objects: list[SceneObject] = []
        for index in chosen:
            colour, shape = pairs[int(index)]
            size = SIZES[int(rng.integers(len(SIZES)))]
            extent = float(rng.uniform(*_EXTENT[size]))
            placed = place_box(rng, extent, objects)
            if placed is None:
                break
            objects.append(SceneObject(colour, shape, size, placed[0], placed[1], extent))
        else:
            return Scene(tuple(objects))
    raise ValueError(f"could not place {count} objects without overlap in {tries} tries")


def place_box(
    rng: np.random.Generator, extent: float, others: list[SceneObject], attempts: int = 50
) -> tuple[float, float] | None:
    """The top-left corner of a free `extent`-sized box (a margin from the border and from
    `others`), or None after `attempts` draws."""
    margin = 0.04
    for _ in range(attempts):
        x, y = rng.uniform(margin, 1.0 - margin - extent, size=2)
        if all(_apart(x, y, extent, o, margin) for o in others):
            return float(x), float(y)
    return None


def _apart(x: float, y: float, extent: float, other: SceneObject, margin: float) -> bool:
    return (
        x + extent + margin <= other.x
        or other.x + other.extent + margin <= x
        or y + extent + margin <= other.y
        or other.y + other.extent + margin <= y
    )


def shape_outline(
    shape: str, x: float, y: float, size: float, pointing_up: bool = True
) -> list[tuple[float, float]]:
    """Corner points of a square, triangle or plus-shaped cross in a box (any units)."""
    if shape == "square":
        return [(x, y), (x + size, y), (x + size, y + size), (x, y + size)]
    if shape == "triangle":
        if pointing_up:
            return [(x + size / 2, y), (x + size, y + size), (x, y + size)]
        return [(x, y), (x + size, y), (x + size / 2, y + size)]
    if shape != "cross":
        raise ValueError(f"no outline for {shape!r}; circles are drawn as ellipses")
    a, b = x + 0.32 * size, x + 0.68 * size  # a plus sign whose bars are 36% of the size
    c, d = y + 0.32 * size, y + 0.68 * size
    return [
        (a, y), (b, y), (b, c), (x + size, c), (x + size, d), (b, d),
        (b, y + size), (a, y + size), (a, d), (x, d), (x, c), (a, c),
    ]  # fmt: skip


def render_scene(rng: np.random.Generator, scene: Scene, image_size: int = 64) -> np.ndarray:
    """[image_size, image_size, 3] uint8: the objects, colour jitter (+-20 per channel),
    a dark grey background and mild pixel noise."""
    s = _SUPERSAMPLE
    big = image_size * s
    grey = rng.uniform(40.0, 90.0) + rng.uniform(-8.0, 8.0, size=3)
    canvas = Image.new("RGB", (big, big), tuple(int(round(c)) for c in grey))
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        base = np.array(COLOUR_RGB[obj.colour], dtype=np.float64)
        fill = tuple(int(round(c)) for c in np.clip(base + rng.uniform(-20, 20, 3), 0, 255))
        x, y, size = obj.x * big, obj.y * big, obj.extent * big
        if obj.shape == "circle":
            draw.ellipse((x, y, x + size, y + size), fill=fill)
        else:
            draw.polygon(shape_outline(obj.shape, x, y, size), fill=fill)
    small = canvas.resize((image_size, image_size), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.float64)
    pixels = pixels + rng.normal(0.0, rng.uniform(2.0, 6.0), size=pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
