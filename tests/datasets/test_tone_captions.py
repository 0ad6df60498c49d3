"""Captioned tone sequences: deterministic, and every caption says what the audio holds
(tones counted, timed and pitched by a plain signal detector)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from plait.datasets.tone_captions import (
    HELD_OUT,
    LENGTHS_S,
    PITCHES_HZ,
    REFERENCES,
    SAMPLE_RATE,
    generate_tone_captions,
)

SIZES = {"n_train": 30, "n_valid": 5, "n_test": 10, "n_heldout": 10}


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def detect(samples: np.ndarray) -> list[tuple[str, str]]:
    """(length, pitch) of each tone: loud 10 ms frames grouped into runs, each run's
    duration and spectral peak named by the nearest band."""
    frame = SAMPLE_RATE // 100
    energy = np.array(
        [
            np.sqrt(np.mean(samples[i : i + frame] ** 2))
            for i in range(0, len(samples) - frame, frame)
        ]
    )
    loud = energy > 0.4 * energy.max()
    runs, start = [], None
    for i, on in enumerate([*loud, False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            runs.append((start, i))
            start = None
    found = []
    for a, b in runs:
        seconds = (b - a) / 100
        piece = samples[a * frame : b * frame]
        spectrum = np.abs(np.fft.rfft(piece * np.hanning(len(piece))))
        peak = np.fft.rfftfreq(len(piece), 1 / SAMPLE_RATE)[spectrum.argmax()]
        pitch = min(PITCHES_HZ, key=lambda p: abs(np.log(peak / np.mean(PITCHES_HZ[p]))))
        length = "short" if seconds < 0.26 else "long"
        found.append((length, pitch))
    return found


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("tones")
    return out, generate_tone_captions(out, seed=0, **SIZES)


def test_the_audio_holds_what_the_caption_says(tones) -> None:
    out, paths = tones
    for split in ("train", "test_heldout"):
        for row in read(paths[split]):
            listed = [tuple(t.split()) for t in row["tones"].split(";")]
            samples, rate = sf.read(out / row["audio"])
            assert rate == SAMPLE_RATE
            assert detect(samples) == listed, row
            for length, pitch in listed:
                assert f"{length} {pitch}" in row["caption"]


def test_captions_name_the_tones_in_order(tones) -> None:
    _, paths = tones
    rows = {r["id"]: r for r in read(paths["train"])}
    refs = [r for r in read(paths["references"]) if r["id"] in rows]
    assert len(refs) == REFERENCES * len(rows)
    for ref in refs:
        listed = [f"{a} {b}" for a, b in (t.split() for t in rows[ref["id"]]["tones"].split(";"))]
        text, cursor = ref["caption"], 0
        for name in listed:  # each tone found after the one before it
            cursor = text.index(name, cursor) + len(name)


def test_held_out_pairs_only_in_the_held_out_split(tones) -> None:
    _, paths = tones
    for split in ("train", "valid", "test"):
        for row in read(paths[split]):
            assert not {tuple(t.split()) for t in row["tones"].split(";")} & HELD_OUT
    for row in read(paths["test_heldout"]):
        assert {tuple(t.split()) for t in row["tones"].split(";")} & HELD_OUT


def test_deterministic(tones, tmp_path) -> None:
    out, paths = tones
    again = generate_tone_captions(tmp_path, seed=0, **SIZES)
    assert again["train"].read_bytes() == paths["train"].read_bytes()
    first = read(paths["train"])[0]["audio"]
    assert (tmp_path / first).read_bytes() == (out / first).read_bytes()
    assert set(LENGTHS_S) == {"short", "long"}
