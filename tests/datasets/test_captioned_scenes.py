"""Captioned scenes: deterministic, every caption true of its picture, held-out pairs only
in the held-out split."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from plait.datasets.captioned_scenes import (
    COLUMNS,
    HELD_OUT,
    IMAGE_SIZE,
    REFERENCES,
    generate_captioned_scenes,
)
from plait.datasets.scenes import COLOUR_RGB, COLOURS, SHAPES, SceneObject, sample_scene

SIZES = {"n_train": 60, "n_valid": 10, "n_test": 20, "n_heldout": 20}
MENTION = re.compile(rf"(?:(small|large) )?({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})")


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def objects_of(row: dict[str, str]) -> list[tuple[str, str, str, float, float]]:
    found = []
    for part in row["objects"].split(";"):
        name, where = part.split("@")
        size, colour, shape = name.split()
        x, y = map(float, where.split(","))
        found.append((size, colour, shape, x, y))
    return found


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("scenes")
    return out, generate_captioned_scenes(out, seed=0, **SIZES)


def test_files_and_columns(scenes) -> None:
    out, paths = scenes
    for split, n in zip(("train", "valid", "test", "test_heldout"), SIZES.values(), strict=True):
        rows = read(paths[split])
        assert len(rows) == n and list(rows[0]) == list(COLUMNS)
        for row in rows[:3]:
            with Image.open(out / row["image"]) as image:
                assert image.size == (IMAGE_SIZE, IMAGE_SIZE) and image.mode == "RGB"
    references = read(paths["references"])
    assert len(references) == REFERENCES * sum(SIZES.values())


def test_deterministic(scenes, tmp_path) -> None:
    out, paths = scenes
    again = generate_captioned_scenes(tmp_path, seed=0, **SIZES)
    for split, path in paths.items():
        assert path.read_bytes() == again[split].read_bytes()
    first = read(paths["train"])[0]["image"]
    assert (out / first).read_bytes() == (tmp_path / first).read_bytes()
    other = generate_captioned_scenes(tmp_path / "other", seed=1, **SIZES)
    assert other["train"].read_bytes() != paths["train"].read_bytes()


def test_held_out_pairs_only_in_the_held_out_split(scenes) -> None:
    _, paths = scenes
    for split in ("train", "valid", "test"):
        for row in read(paths[split]):
            assert not {(c, s) for _, c, s, _, _ in objects_of(row)} & HELD_OUT, row
    for row in read(paths["test_heldout"]):
        assert {(c, s) for _, c, s, _, _ in objects_of(row)} & HELD_OUT, row
    colours = {c for row in read(paths["train"]) for _, c, _, _, _ in objects_of(row)}
    shapes = {s for row in read(paths["train"]) for _, _, s, _, _ in objects_of(row)}
    assert colours == set(COLOURS) and shapes == set(SHAPES)  # the parts are all seen


def test_every_caption_is_true_of_its_scene(scenes) -> None:
    _, paths = scenes
    captions: dict[str, list[str]] = {}
    rows = {r["id"]: r for s in ("train", "valid", "test", "test_heldout") for r in read(paths[s])}
    for row in rows.values():
        captions.setdefault(row["id"], []).append(row["caption"])
    for ref in read(paths["references"]):
        captions[ref["id"]].append(ref["caption"])
    checked_relations = 0
    for row_id, texts in captions.items():
        objects = objects_of(rows[row_id])
        for text in texts:
            mentions = MENTION.findall(text)
            assert mentions, text
            for size, colour, shape in mentions:
                assert any(
                    c == colour and s == shape and (not size or z == size)
                    for z, c, s, _, _ in objects
                ), (text, objects)
            for word, axis, sign in (
                ("left of", 3, -1),
                ("right of", 3, 1),
                ("above", 4, -1),
                ("below", 4, 1),
            ):
                if f" {word} " in f" {text} ":
                    (_, ca, sa), (_, cb, sb) = mentions[-2], mentions[-1]
                    a = next(o for o in objects if (o[1], o[2]) == (ca, sa))
                    b = next(o for o in objects if (o[1], o[2]) == (cb, sb))
                    assert sign * (a[axis] - b[axis]) > 0, (text, objects)
                    checked_relations += 1
            count = rows[row_id]["count"]
            if "two shapes" in text or "three shapes" in text:
                assert ("two" if count == "2" else "three") in text
    assert checked_relations > 50


def test_pictures_show_the_named_colours(scenes) -> None:
    """At each listed centre the pixel is the object's colour, within the jitter."""
    out, paths = scenes
    for row in read(paths["test"]):
        pixels = np.asarray(Image.open(out / row["image"]), dtype=float)
        for _, colour, shape, x, y in objects_of(row):
            if shape == "cross" or shape == "triangle":
                continue  # the centre of a triangle's box may be near its edge
            cx, cy = int(x * IMAGE_SIZE), int(y * IMAGE_SIZE)
            assert np.abs(pixels[cy, cx] - COLOUR_RGB[colour]).max() < 50, (row, colour)


def test_scenes_never_overlap() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        objects: tuple[SceneObject, ...] = sample_scene(rng, 3).objects
        for i, a in enumerate(objects):
            for b in objects[i + 1 :]:
                overlap_x = a.x < b.x + b.extent and b.x < a.x + a.extent
                overlap_y = a.y < b.y + b.extent and b.y < a.y + a.extent
                assert not (overlap_x and overlap_y)
                assert (a.colour, a.shape) != (b.colour, b.shape)


def test_bad_sizes_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="n_train must be a non-negative integer"):
        generate_captioned_scenes(tmp_path, n_train=-1)


def test_cli_builds_both_kinds(tmp_path) -> None:
    from typer.testing import CliRunner

    from plait.cli import app

    for kind in ("scenes", "tones"):
        args = ["data", "captions", str(tmp_path / kind), "--kind", kind, "--train", "4"]
        args += ["--valid", "1", "--test", "1", "--heldout", "2"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert len(read(tmp_path / kind / "test_heldout.csv")) == 2
        assert (tmp_path / kind / "references.csv").is_file()
