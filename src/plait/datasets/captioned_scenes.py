"""Captioned scenes: pictures of 2-3 coloured shapes with captions naming objects,
attributes and spatial relations, and a held-out test of unseen attribute combinations.

Each row is one picture (`plait.datasets.scenes`) and one training caption; the same
picture has `REFERENCES` more captions in `references.csv` (several templates and object
orders) for BLEU/CIDEr-style scoring. Captions say what is there and where:

    "a small red circle to the left of a large blue square"
    "there are three shapes: a green cross, a small yellow triangle and a white square"
    "a large purple circle above a small red cross"

Compositional generalisation is measured by colour-shape pairs that never appear in
training (`HELD_OUT`; every colour and every shape still appears, only these pairings
do not): `train.csv`, `valid.csv` and `test.csv` never hold them; every picture of
`test_heldout.csv` holds at least one. A captioner that learned the parts, not the
memorised pairs, scores on `test_heldout` close to `test`.

Deterministic: streams keyed on `(seed, split, row, purpose)` as the other builders.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from plait.datasets.demo import check_counts, csv_text, row_rng
from plait.datasets.scenes import Scene, SceneObject, render_scene, sample_scene
from plait.utils.io import atomic_write_text

__all__ = ["COLUMNS", "HELD_OUT", "IMAGE_SIZE", "REFERENCES", "generate_captioned_scenes"]

HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {("red", "triangle"), ("blue", "circle"), ("green", "cross"), ("yellow", "square")}
)
COLUMNS: tuple[str, ...] = ("id", "image", "caption", "objects", "count")
REFERENCE_COLUMNS: tuple[str, ...] = ("id", "caption")
SPLITS: tuple[str, ...] = ("train", "valid", "test", "test_heldout")
REFERENCES = 5
IMAGE_SIZE = 64

_SCENE, _IMAGE, _TEXT = 1, 2, 3
_NUMBERS = {2: "two", 3: "three"}


def generate_captioned_scenes(
    out_dir: str | Path,
    n_train: int = 2000,
    n_valid: int = 200,
    n_test: int = 200,
    n_heldout: int = 200,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the data set into `out_dir`; return {split: manifest path} plus
    `"references"`.

    Writes `train.csv`, `valid.csv`, `test.csv`, `test_heldout.csv` (columns `id, image,
    caption, objects, count`; `objects` lists each object as `size colour shape@x,y`),
    `references.csv` (`id, caption`: `REFERENCES` captions per picture of every split),
    `images/<id>.png` (64x64 RGB) and `README.md`.

    Raises:
        ValueError: a negative or non-integer size or seed.
    """
    sizes = {"train": n_train, "valid": n_valid, "test": n_test, "test_heldout": n_heldout}
    check_counts({**{f"n_{s}": n for s, n in sizes.items()}, "seed": seed})
    out = Path(out_dir)
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for stale in image_dir.glob("scene-*.png"):
        stale.unlink()

    paths: dict[str, Path] = {}
    references: list[list[str]] = []
    first_id = 1
    for split, n in sizes.items():
        rows: list[list[str]] = []
        for i in range(int(n)):
            row_id = f"scene-{first_id + i:05d}"
            scene = _scene(split, i, int(seed))
            pixels = render_scene(row_rng(int(seed), split, i, _IMAGE), scene, IMAGE_SIZE)
            Image.fromarray(pixels).save(image_dir / f"{row_id}.png", optimize=False)
            text_rng = row_rng(int(seed), split, i, _TEXT)
            captions = [caption(text_rng, scene) for _ in range(REFERENCES + 1)]
            rows.append(
                [
                    row_id,
                    f"images/{row_id}.png",
                    captions[0],
                    scene.describe(),
                    str(len(scene.objects)),
                ]
            )
            references.extend([row_id, c] for c in captions[1:])
        paths[split] = out / f"{split}.csv"
        atomic_write_text(paths[split], csv_text(COLUMNS, rows))
        first_id += int(n)
    paths["references"] = out / "references.csv"
    atomic_write_text(paths["references"], csv_text(REFERENCE_COLUMNS, references))
    atomic_write_text(out / "README.md", _readme(sizes, int(seed)))
    return paths


def _scene(split: str, index: int, seed: int) -> Scene:
    rng = row_rng(seed, split, index, _SCENE)
    count = int(rng.integers(2, 4))
    if split != "test_heldout":
        return sample_scene(rng, count, lambda c, s: (c, s) not in HELD_OUT)
    # any scene holding a held-out pair (about one draw in three has one)
    for _ in range(1000):
        scene = sample_scene(rng, count)
        if any((o.colour, o.shape) in HELD_OUT for o in scene.objects):
            return scene
    raise RuntimeError("no held-out colour-shape pair drawn in 1000 scenes")


# ---------------------------------------------------------------------------- captions


def relation(a: SceneObject, b: SceneObject) -> str:
    """Where `a` is relative to `b`, along the axis where they are further apart."""
    (ax, ay), (bx, by) = a.centre, b.centre
    if abs(ax - bx) >= abs(ay - by):
        return "to the left of" if ax < bx else "to the right of"
    return "above" if ay < by else "below"


def _mention(rng: np.random.Generator, obj: SceneObject, with_size: bool | None = None) -> str:
    with_size = bool(rng.random() < 0.6) if with_size is None else with_size
    words = f"{obj.size} {obj.colour} {obj.shape}" if with_size else f"{obj.colour} {obj.shape}"
    return _article(words)


def _article(words: str) -> str:
    return re.sub(r"^a ([aeiou])", r"an \1", f"a {words}")


def caption(rng: np.random.Generator, scene: Scene) -> str:
    """One true sentence about `scene`, from one of three kinds: a relation between two
    objects, a list of every object, or a relation plus the count."""
    objects = list(scene.objects)
    order = [objects[int(i)] for i in rng.permutation(len(objects))]
    kind = int(rng.integers(3))
    if kind == 0:
        a, b = order[0], order[1]
        return f"{_mention(rng, a)} {relation(a, b)} {_mention(rng, b)}"
    if kind == 1:
        parts = [_mention(rng, o) for o in order]
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        return f"there are {_NUMBERS[len(objects)]} shapes: {listed}"
    a, b = order[0], order[1]
    return (
        f"{_NUMBERS[len(objects)]} shapes; {_mention(rng, a, True)} is {relation(a, b)} "
        f"{_mention(rng, b, False)}"
    )


def _readme(sizes: dict[str, int], seed: int) -> str:
    counts = ", ".join(
        f"`n_{'heldout' if s == 'test_heldout' else s}={n}`" for s, n in sizes.items()
    )
    held = ", ".join(f"{c} {s}" for c, s in sorted(HELD_OUT))
    return f"""# Plait captioned scenes

Synthetic, generated by `plait.datasets.captioned_scenes.generate_captioned_scenes` with
{counts}, `seed={seed}`; the same arguments give identical files.

- `train.csv`, `valid.csv`, `test.csv`, `test_heldout.csv`: columns `{", ".join(COLUMNS)}`.
  One picture and one caption per row; `objects` lists each object as
  `size colour shape@x,y` (centre, fractions of the side).
- `references.csv`: `id, caption`, {REFERENCES} more true captions per picture.
- `images/<id>.png`: {IMAGE_SIZE}x{IMAGE_SIZE} RGB, 2-3 non-overlapping shapes.

Held-out pairs never seen in train/valid/test: {held}. Every picture in
`test_heldout.csv` holds at least one of them.
"""
