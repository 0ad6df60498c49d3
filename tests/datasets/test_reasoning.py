"""Reasoning scenes: deterministic, every answer true of its scene's geometry, a fixed
answer vocabulary and question types asked equally often."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from plait.datasets.reasoning import (
    ANSWERS,
    COLUMNS,
    IMAGE_SIZE,
    MIDDLE_GAP,
    QUESTION_TYPES,
    QUESTIONS,
    RELATIONAL,
    generate_reasoning,
    reasoning_scene,
)
from plait.datasets.scenes import COLOURS

SIZES = {"n_train": 12, "n_valid": 3, "n_test": 3}


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("reasoning")
    return out, generate_reasoning(out, seed=3, **SIZES)


def expected(objects: list[tuple[str, str, float, float]], kind: str, colour: str) -> str:
    """The answer worked out again, independently, from (colour, shape, x, y) centres."""
    me = next(o for o in objects if o[0] == colour)
    if kind == "shape":
        return me[1]
    if kind == "horizontal":
        return "left" if me[2] < 0.5 else "right"
    if kind == "vertical":
        return "top" if me[3] < 0.5 else "bottom"
    if kind == "count":
        return str(len([o for o in objects if o[1] == me[1]]))
    others = sorted((math.dist(o[2:], me[2:]), o[1]) for o in objects if o is not me)
    return others[0][1] if kind == "closest" else others[-1][1]


def test_files_columns_and_pictures(built) -> None:
    out, paths = built
    for split, n in zip(("train", "valid", "test"), SIZES.values(), strict=True):
        rows = read(paths[split])
        assert len(rows) == QUESTIONS * n and list(rows[0]) == list(COLUMNS)
        assert len({r["scene"] for r in rows}) == n
        with Image.open(out / rows[0]["image"]) as image:
            assert image.size == (IMAGE_SIZE, IMAGE_SIZE) and image.mode == "RGB"


def test_every_answer_follows_from_the_scene_geometry(built) -> None:
    _, paths = built
    for split in ("train", "valid", "test"):
        scenes = {}
        for row in read(paths[split]):
            if row["scene"] not in scenes:
                index = int(row["scene"].split("-")[1]) - 1
                index -= {"train": 0, "valid": 12, "test": 15}[split]
                scenes[row["scene"]] = reasoning_scene(3, split, index)
            scene = scenes[row["scene"]]
            objects = [(o.colour, o.shape, *o.centre) for o in scene.objects]
            colour = next(c for c in COLOURS if f" {c} object" in row["question"])
            assert row["answer"] == expected(objects, row["question_type"], colour), row
            relation = "relational" if row["question_type"] in RELATIONAL else "non-relational"
            assert row["relation"] == relation
            # the objects column writes the same scene down
            written = [part.split("@")[0].split()[1:] for part in row["objects"].split(";")]
            assert written == [[o.colour, o.shape] for o in scene.objects]


def test_scenes_hold_each_colour_once_off_the_middle_lines() -> None:
    for index in range(20):
        scene = reasoning_scene(0, "train", index)
        assert sorted(o.colour for o in scene.objects) == sorted(COLOURS)
        for obj in scene.objects:
            assert all(abs(c - 0.5) >= MIDDLE_GAP - 1e-9 for c in obj.centre)


def test_vocabulary_is_fixed_and_types_are_balanced(built) -> None:
    _, paths = built
    rows = [r for split in ("train", "valid", "test") for r in read(paths[split])]
    assert {r["answer"] for r in rows} <= set(ANSWERS)
    assert {r["answer"] for r in rows} >= {"circle", "square", "left", "right", "top", "bottom"}
    counts = Counter(r["question_type"] for r in rows)
    assert set(counts) == set(QUESTION_TYPES) and len(set(counts.values())) == 1


def test_by_default_every_type_is_asked_about_every_colour_once(built) -> None:
    _, paths = built
    assert QUESTIONS == len(QUESTION_TYPES) * len(COLOURS) == 36
    by_scene: dict[str, list[tuple[str, str]]] = {}
    for row in read(paths["train"]):
        colour = next(c for c in COLOURS if f" {c} object" in row["question"])
        by_scene.setdefault(row["scene"], []).append((row["question_type"], colour))
    for asked in by_scene.values():
        assert sorted(asked) == sorted((k, c) for k in QUESTION_TYPES for c in COLOURS)
        # the first six ask each type once: fewer questions stay balanced
        assert sorted(k for k, _ in asked[:6]) == sorted(QUESTION_TYPES)


def test_fewer_questions_still_spread_over_the_types(tmp_path: Path) -> None:
    paths = generate_reasoning(tmp_path, n_train=30, n_valid=0, n_test=0, seed=1, questions=2)
    counts = Counter(r["question_type"] for r in read(paths["train"]))
    assert set(counts) == set(QUESTION_TYPES) and min(counts.values()) >= 4


def test_deterministic(built, tmp_path: Path) -> None:
    out, paths = built
    again = generate_reasoning(tmp_path, seed=3, **SIZES)
    for split in ("train", "valid", "test"):
        assert again[split].read_bytes() == paths[split].read_bytes()
    for name in ("scene-00001.png", "scene-00018.png"):
        assert (tmp_path / "images" / name).read_bytes() == (out / "images" / name).read_bytes()
    other = generate_reasoning(tmp_path / "other", seed=4, **SIZES)
    assert other["train"].read_bytes() != paths["train"].read_bytes()


@pytest.mark.parametrize("bad", [{"n_train": -1}, {"seed": 1.5}, {"questions": True}])
def test_bad_sizes_are_refused(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        generate_reasoning(tmp_path, **{**SIZES, **bad})
