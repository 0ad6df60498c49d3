"""Visual reasoning scenes (Sort-of-CLEVR style): pictures of six coloured shapes with
questions in plain English and answers from a fixed vocabulary.

Every picture holds one object of each colour (`COLOURS`), each a circle or a square of
the same size, placed without overlap and never on the picture's middle lines, so
"left or right" is visible. Each scene gets `questions` questions (default `QUESTIONS`,
36: every type about every colour once; Sort-of-CLEVR asks 20), cycling through six
types, three non-relational (about one object) and three relational (about an object
and the others):

    shape       "what is the shape of the red object?"                        circle
    horizontal  "is the red object on the left or on the right?"              left
    vertical    "is the red object at the top or at the bottom?"              bottom
    closest     "what is the shape of the object closest to the red object?"  square
    furthest    "what is the shape of the object furthest from the red object?"
    count       "how many objects have the same shape as the red object, itself included?"  3

Answers are one of `ANSWERS`; `question_type` names the type and `relation` says
`non-relational` or `relational`, so accuracy can be reported per type and per family.
Every answer is computed from the scene's geometry (object centres), which the
`objects` column writes down, so a reader can check any row.

Deterministic: streams keyed on `(seed, split, scene, purpose)` as the other builders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from plait.datasets.demo import check_counts, row_rng, write_splits
from plait.datasets.scenes import COLOURS, Scene, SceneObject, place_box, render_scene
from plait.utils.io import atomic_write_text

__all__ = [
    "ANSWERS",
    "COLUMNS",
    "IMAGE_SIZE",
    "NON_RELATIONAL",
    "QUESTIONS",
    "QUESTION_TYPES",
    "RELATIONAL",
    "SHAPES",
    "answer",
    "generate_reasoning",
    "question_text",
    "reasoning_scene",
]

SHAPES: tuple[str, ...] = ("circle", "square")
NON_RELATIONAL: tuple[str, ...] = ("shape", "horizontal", "vertical")
RELATIONAL: tuple[str, ...] = ("closest", "furthest", "count")
QUESTION_TYPES: tuple[str, ...] = NON_RELATIONAL + RELATIONAL
ANSWERS: tuple[str, ...] = (
    *SHAPES, "left", "right", "top", "bottom", *(str(n) for n in range(1, len(COLOURS) + 1)),
)  # fmt: skip
COLUMNS: tuple[str, ...] = (
    "id", "image", "question", "answer", "question_type", "relation", "scene", "objects",
)  # fmt: skip
IMAGE_SIZE = 64
QUESTIONS = len(QUESTION_TYPES) * len(COLOURS)  # 36: every (type, colour) pair once a scene
EXTENT = 0.17  # object side, a fraction of the picture's side (about 11 px at 64 px)
MIDDLE_GAP = 0.04  # no centre this close to a middle line: left / right is never a guess

_SCENE, _IMAGE, _QUESTIONS = 1, 2, 3
_TEMPLATES = {
    "shape": "what is the shape of the {} object?",
    "horizontal": "is the {} object on the left or on the right?",
    "vertical": "is the {} object at the top or at the bottom?",
    "closest": "what is the shape of the object closest to the {} object?",
    "furthest": "what is the shape of the object furthest from the {} object?",
    "count": "how many objects have the same shape as the {} object, itself included?",
}


def generate_reasoning(
    out_dir: str | Path,
    n_train: int = 2000,
    n_valid: int = 200,
    n_test: int = 200,
    seed: int = 0,
    questions: int = QUESTIONS,
    progress: bool = False,
) -> dict[str, Path]:
    """Write the data set into `out_dir`; return {split: manifest path}.

    `n_*` count scenes (pictures); each has `questions` rows. Writes `train.csv`,
    `valid.csv`, `test.csv` (columns `COLUMNS`), `images/scene-<n>.png` (64x64 RGB) and
    `README.md`.

    Raises:
        ValueError: a negative or non-integer size, seed or question count.
    """
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    check_counts({**{f"n_{s}": n for s, n in sizes.items()}, "seed": seed, "questions": questions})
    out = Path(out_dir)
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for stale in image_dir.glob("scene-*.png"):
        stale.unlink()

    def rows_of(split: str, i: int, number: int) -> list[list[str]]:
        scene_id = f"scene-{number:05d}"
        scene = reasoning_scene(int(seed), split, i)
        pixels = render_scene(row_rng(int(seed), split, i, _IMAGE), scene, IMAGE_SIZE)
        Image.fromarray(pixels).save(image_dir / f"{scene_id}.png", optimize=False)
        asked = _questions(row_rng(int(seed), split, i, _QUESTIONS), int(questions))
        return [
            [f"{scene_id}-q{q}", f"images/{scene_id}.png", question_text(kind, colour),
             answer(scene, kind, colour), kind, _family(kind), scene_id, scene.describe()]
            for q, (kind, colour) in enumerate(asked)
        ]  # fmt: skip

    paths = write_splits(out, sizes, COLUMNS, rows_of, progress=progress,
                         description="drawing scenes")  # fmt: skip
    atomic_write_text(out / "README.md", _readme(sizes, int(seed), int(questions)))
    return paths


def reasoning_scene(seed: int, split: str, index: int, tries: int = 200) -> Scene:
    """Scene `index` of `split`: one object of each colour, circle or square, one size."""
    rng = row_rng(seed, split, index, _SCENE)
    for _ in range(tries):
        objects: list[SceneObject] = []
        for colour in COLOURS:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            placed = _off_the_middle(rng, objects)
            if placed is None:
                break
            objects.append(SceneObject(colour, shape, "small", placed[0], placed[1], EXTENT))
        else:
            return Scene(tuple(objects))
    raise RuntimeError(f"could not place {len(COLOURS)} objects in {tries} tries")


def _off_the_middle(
    rng: np.random.Generator, others: list[SceneObject], attempts: int = 20
) -> tuple[float, float] | None:
    """A free box whose centre keeps `MIDDLE_GAP` from both middle lines."""
    for _ in range(attempts):
        placed = place_box(rng, EXTENT, others)
        if placed is None:
            return None
        centre = np.asarray(placed) + EXTENT / 2
        if bool(np.all(np.abs(centre - 0.5) >= MIDDLE_GAP)):
            return placed
    return None


def _questions(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """(type, colour) of each question: types in turn from a random start, and each type's
    colours in a random order of its own, so the first 36 questions ask every (type,
    colour) pair once (6 types x 6 colours), and fewer spread evenly over the types."""
    start = int(rng.integers(len(QUESTION_TYPES)))
    orders = {kind: rng.permutation(len(COLOURS)) for kind in QUESTION_TYPES}
    asked = []
    for q in range(count):
        kind = QUESTION_TYPES[(start + q) % len(QUESTION_TYPES)]
        turn = (q // len(QUESTION_TYPES)) % len(COLOURS)  # the how-many-th question of its type
        asked.append((kind, COLOURS[int(orders[kind][turn])]))
    return asked


def question_text(kind: str, colour: str) -> str:
    """The English question of type `kind` about the object of `colour`."""
    return _TEMPLATES[kind].format(colour)


def answer(scene: Scene, kind: str, colour: str) -> str:
    """The answer (one of `ANSWERS`) to question `kind` about the `colour` object."""
    subject = next(o for o in scene.objects if o.colour == colour)
    x, y = subject.centre
    if kind == "shape":
        return subject.shape
    if kind == "horizontal":
        return "left" if x < 0.5 else "right"
    if kind == "vertical":
        return "top" if y < 0.5 else "bottom"
    if kind == "count":
        return str(sum(o.shape == subject.shape for o in scene.objects))
    others = [o for o in scene.objects if o is not subject]
    distances = [(o.centre[0] - x) ** 2 + (o.centre[1] - y) ** 2 for o in others]
    if kind == "closest":
        return others[int(np.argmin(distances))].shape
    if kind == "furthest":
        return others[int(np.argmax(distances))].shape
    raise ValueError(f"unknown question type {kind!r}; types: {', '.join(QUESTION_TYPES)}")


def _family(kind: str) -> str:
    """The `relation` column of a question type."""
    return "relational" if kind in RELATIONAL else "non-relational"


def _readme(sizes: dict[str, int], seed: int, questions: int) -> str:
    counts = ", ".join(f"`n_{s}={n}`" for s, n in sizes.items())
    kinds = "\n".join(f"| `{k}` | {_family(k)} | "
                      f"{_TEMPLATES[k].format('red')} |" for k in QUESTION_TYPES)  # fmt: skip
    return f"""# Plait visual reasoning scenes

Synthetic, generated by `plait.datasets.reasoning.generate_reasoning` with {counts},
`seed={seed}`, `questions={questions}`; the same arguments give identical files.

- `train.csv`, `valid.csv`, `test.csv`: columns `{", ".join(COLUMNS)}`, one question per
  row, {questions} per picture (`scene`). `objects` lists each object as
  `size colour shape@x,y` (centre, fractions of the side; y grows downwards).
- `images/<scene>.png`: {IMAGE_SIZE}x{IMAGE_SIZE} RGB, {len(COLOURS)} objects, one per
  colour, each a {" or a ".join(SHAPES)}.

Answers: {", ".join(ANSWERS)}.

| question_type | relation | example |
| --- | --- | --- |
{kinds}
"""
