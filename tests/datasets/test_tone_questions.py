"""Tone questions: deterministic, every answer true of the clip's written tones (worked out
again here), the written tones are the ones the WAV was made from, a fixed answer
vocabulary, question types asked equally often and a clear error for bad counts."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from plait.datasets.demo import row_rng
from plait.datasets.tone_captions import tone_wav
from plait.datasets.tone_questions import (
    ANSWERS,
    COLUMNS,
    QUESTION_TYPES,
    RELATIONAL,
    clip_tones,
    generate_tone_questions,
)

SIZES = {"n_train": 24, "n_valid": 3, "n_test": 3}
ORDINALS = {"first": 0, "second": 1, "third": 2}
PITCH_RANK = {"low": 0, "middle": 1, "high": 2}


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("tone-questions")
    return out, generate_tone_questions(out, seed=3, **SIZES)


def index_of(name: str, count: int) -> int:
    return count - 1 if name == "last" else ORDINALS[name]


def expected(question: str, tones: list[tuple[str, str]]) -> str:
    """The answer worked out again, independently, from the question's words."""
    words = question.rstrip("?").replace(",", "").split()
    named = [index_of(w, len(tones)) for w in words if w in (*ORDINALS, "last")]
    if question == "how many tones are there?":
        return str(len(tones))
    (length_a, pitch_a) = tones[named[0]]
    if question.startswith("what is the pitch"):
        return pitch_a
    if question.endswith("short or long?"):
        return length_a
    if question.startswith("how many tones have the same pitch"):
        return str([p for _, p in tones].count(pitch_a))
    length_b, pitch_b = tones[named[1]]
    if "higher or lower" in question:
        step = PITCH_RANK[pitch_a] - PITCH_RANK[pitch_b]
        return "same" if step == 0 else ("higher" if step > 0 else "lower")
    assert question.startswith("which is longer")
    if length_a == length_b:
        return "same"
    names = [w for w in words if w in (*ORDINALS, "last")]
    return names[0] if length_a == "long" else names[1]


def test_files_columns_and_sounds(built) -> None:
    out, paths = built
    for split, n in zip(("train", "valid", "test"), SIZES.values(), strict=True):
        rows = read(paths[split])
        assert len(rows) == 6 * n and list(rows[0]) == list(COLUMNS)
        assert len({r["clip"] for r in rows}) == n
        assert (out / rows[0]["audio"]).is_file()
    assert "tones" in (out / "README.md").read_text()


def test_every_answer_follows_from_the_written_tones(built) -> None:
    _, paths = built
    for split in ("train", "valid", "test"):
        for row in read(paths[split]):
            tones = [tuple(t.split()) for t in row["tones"].split(";")]
            assert 2 <= len(tones) <= 4
            assert row["answer"] == expected(row["question"], tones), row  # type: ignore[arg-type]
            relation = "relational" if row["question_type"] in RELATIONAL else "non-relational"
            assert row["relation"] == relation


def test_the_written_tones_are_those_the_sound_was_made_from(built) -> None:
    """The WAV is the synthesis of the `tones` column (its content is checked against the
    tones by a signal detector in test_tone_captions.py)."""
    out, paths = built
    offsets = {"train": 0, "valid": 24, "test": 27}
    for split in ("train", "test"):
        for row in read(paths[split])[::6]:
            index = int(row["clip"].split("-")[1]) - 1 - offsets[split]
            tones = [tuple(t.split()) for t in row["tones"].split(";")]
            assert clip_tones(3, split, index) == tones
            wav = tone_wav(row_rng(3, split, index, 2), tones)  # type: ignore[arg-type]
            assert (out / row["audio"]).read_bytes() == wav


def test_vocabulary_is_fixed_and_types_are_balanced(built) -> None:
    _, paths = built
    rows = [r for split in ("train", "valid", "test") for r in read(paths[split])]
    assert {r["answer"] for r in rows} <= set(ANSWERS)
    counts = Counter(r["question_type"] for r in rows)
    assert set(counts) == set(QUESTION_TYPES) and len(set(counts.values())) == 1
    by_type = {kind: Counter(r["answer"] for r in rows if r["question_type"] == kind)
               for kind in QUESTION_TYPES}  # fmt: skip
    assert set(by_type["count"]) == {"2", "3", "4"}
    assert set(by_type["pitch"]) == {"low", "middle", "high"}
    assert set(by_type["compare_pitch"]) == {"higher", "lower", "same"}
    assert {"first", "last", "same"} <= set(by_type["compare_length"])


def test_deterministic(built, tmp_path: Path) -> None:
    out, paths = built
    again = generate_tone_questions(tmp_path, seed=3, **SIZES)
    for split in ("train", "valid", "test"):
        assert again[split].read_bytes() == paths[split].read_bytes()
    for wav in sorted((out / "audio").glob("*.wav")):
        assert (tmp_path / "audio" / wav.name).read_bytes() == wav.read_bytes()
    assert (tmp_path / "README.md").read_bytes() == (out / "README.md").read_bytes()
    other = generate_tone_questions(tmp_path / "other", seed=4, **SIZES)
    assert other["train"].read_bytes() != paths["train"].read_bytes()


@pytest.mark.parametrize("bad", [{"n_train": -1}, {"seed": 1.5}, {"questions": True}])
def test_bad_counts_are_refused(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(bad))} must be a non-negative integer"):
        generate_tone_questions(tmp_path, **{**SIZES, **bad})
