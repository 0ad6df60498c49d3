"""Digits: spoken, handwritten and written digits, for learning one shared embedding space.

Built from the original Free Spoken Digit Dataset (FSDD) and MNIST files, with one row
per FSDD recording (3,000 rows), each row showing one digit in three modalities:

- **audio**: the recording itself, decoded to float32 in [-1, 1] at 8 kHz and
  centre-cropped or zero-padded (centred) to 8,000 samples (1.0 s; 99.3% of FSDD
  recordings are shorter), stored as rows of ``audio_{split}.npy`` [N, 8000]. Plait's
  audio processor reads a 1-D array-cell row as a waveform at the modality's
  `sample_rate` (8000 here) and computes the log-mel itself, so the features stay a
  config choice.
- **image**: an MNIST image of the same digit, 28 x 28 uint8 (the original pixels),
  stored as rows of ``image_{split}.npy`` [N, 28, 28]. Train rows draw from MNIST training
  images 0-54,999, valid rows from 55,000-59,999 (the usual MNIST hold-out) and test rows
  from the MNIST test set, so no image is in two splits. Within a split each digit's
  images are drawn without replacement by a seeded generator, so no image repeats.
  The ``mnist_index`` column names the image: an index into the MNIST training file for
  train and valid rows, into the test (``t10k``) file for test rows.
- **text**: the digit's word in a phrasing drawn by a seeded generator from `TEMPLATES`
  ("seven", "the number seven", "spoken digit seven", "7 (seven)", ...).

The label column ``digit`` holds the word (``"seven"``), so an alignment run can use it
for zero-shot class names and label-level retrieval relevance; ``speaker`` is FSDD's
speaker name (six speakers, all in every split: FSDD has too few speakers to hold one
out).

Splits follow the recording index (0-49 per speaker and digit): 0-4 is **test** (FSDD's
official split), 5-9 **valid**, 10-49 **train**: 2,400 / 300 / 300 rows. ``subset=N``
keeps N rows per split (capped at the split's size), stratified by digit and spread over
speakers and indices (see `_stratified`); the pairing and phrasing are drawn over the
full splits first, so every row of a subset build is the same as in the full build.

Output (``out_dir``)::

    audio_{train,valid,test}.npy   [N, 8000] float32 waveforms, 8 kHz
    image_{train,valid,test}.npy   [N, 28, 28] uint8 MNIST digits
    train.csv valid.csv test.csv   id, audio, image, text, digit, speaker, mnist_index
    README.md                      how it was built, counts, sources and licences

Manifest cells are array cells (``audio_train.npy#12``, see `plait.data.arrays`); every
file is written atomically. The full build takes about 3 s (reading the FSDD archive is
most of it).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from plait.datasets.avmnist import (
    CLIP_SAMPLES,
    SAMPLE_RATE,
    TRAIN_SIZE,
    VALID_SIZE,
    _save_csv,
    _save_npy,
    fix_length,
    load_fsdd,
    load_mnist,
)
from plait.utils.io import atomic_write_text
from plait.utils.progress import progress_bar

__all__ = [
    "COLUMNS",
    "DIGIT_WORDS",
    "RECORDING_POOLS",
    "SPLITS",
    "TEMPLATES",
    "build_digits",
]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "valid", "test")
DIGIT_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)  # fmt: skip
COLUMNS: tuple[str, ...] = ("id", "audio", "image", "text", "digit", "speaker", "mnist_index")

#: FSDD recording indices of each split (the official test split is index 0-4).
RECORDING_POOLS: dict[str, range] = {
    "train": range(10, 50),
    "valid": range(5, 10),
    "test": range(0, 5),
}
#: Where each split's images come from: (MNIST file part, first index, stop index or None).
_IMAGE_POOLS: dict[str, tuple[str, int, int | None]] = {
    "train": ("train", 0, TRAIN_SIZE),
    "valid": ("train", TRAIN_SIZE, TRAIN_SIZE + VALID_SIZE),
    "test": ("test", 0, None),
}

#: Phrasings of the text column; `{word}` is the digit's word, `{numeral}` its numeral.
TEMPLATES: tuple[str, ...] = (
    "{word}",
    "the number {word}",
    "spoken digit {word}",
    "a handwritten {word}",
    "{numeral} ({word})",
    "the digit {word}",
    "someone says {word}",
    "number {word}",
    "{word}, written and spoken",
    "a picture of the digit {word}",
)

_SPLIT_CODES = {"train": 1, "valid": 2, "test": 3}
_IMAGE, _TEXT = 1, 2  # purpose codes of the random streams


def build_digits(
    mnist_dir: str | Path,
    fsdd_dir: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    subset: int | None = None,
    progress: bool = False,
) -> dict[str, Path]:
    """Build the digits manifests (see the module docstring); return {split: manifest path}.

    Matches ``plait data digits --mnist DIR --fsdd DIR --out DIR [--subset N] [--seed S]``.

    Args:
        mnist_dir: folder of the four gzipped MNIST IDX files.
        fsdd_dir: folder holding FSDD's `recordings.tar.xz` and `manifest.csv`.
        out_dir: where the arrays, manifests and README.md go (created).
        seed: picks the MNIST image of each row and the phrasing of each text.
        subset: keep N rows per split (at least 10, at most the split's size), stratified
            by digit; None keeps all 2,400 / 300 / 300.
        progress: show a progress bar over the build steps.

    Example::

        paths = build_digits("shared/data/mnist", "shared/data/fsdd", "digits", subset=200)
        paths["train"]  # digits/train.csv

    Raises:
        DataError: missing or unreadable source files.
        ValueError: a bad `subset` or `seed`.
    """
    start = time.perf_counter()
    if subset is not None and (isinstance(subset, bool) or int(subset) != subset or subset < 10):
        raise ValueError(f"subset must be an integer >= 10 (one row per digit), got {subset!r}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    paths: dict[str, Path] = {}
    counts: dict[str, int] = {}
    with progress_bar(progress, "digits", 2 + len(SPLITS)) as advance:
        mnist = load_mnist(mnist_dir)
        advance(1)
        recordings, waves = load_fsdd(fsdd_dir)
        advance(1)
        for split in SPLITS:
            frame, images, audio = _split_rows(split, recordings, waves, mnist, int(seed))
            if subset is not None:
                keep = _stratified(frame, int(subset))
                frame, images, audio = frame.iloc[keep], images[keep], audio[keep]
            n = len(frame)
            frame = frame.assign(
                audio=[f"audio_{split}.npy#{i}" for i in range(n)],
                image=[f"image_{split}.npy#{i}" for i in range(n)],
            )[list(COLUMNS)]
            _save_npy(out / f"audio_{split}.npy", audio)
            _save_npy(out / f"image_{split}.npy", images)
            paths[split] = _save_csv(out / f"{split}.csv", frame)
            counts[split] = n
            advance(1)
    atomic_write_text(out / "README.md", _readme(counts, int(seed), subset, mnist_dir, fsdd_dir))
    log.info("digits built in %.1f s: %s", time.perf_counter() - start, counts)
    return paths


def _split_rows(
    split: str,
    recordings: pd.DataFrame,
    waves: list[np.ndarray],
    mnist: dict[str, np.ndarray],
    seed: int,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Every row of one split: (table without the array cells, images [N, 28, 28] uint8,
    waveforms [N, CLIP_SAMPLES] float32), in FSDD order (digit, speaker, index)."""
    mine = np.flatnonzero(recordings["index"].isin(list(RECORDING_POOLS[split])).to_numpy())
    table = recordings.iloc[mine]
    digits = table["digit"].to_numpy()

    part, first, stop = _IMAGE_POOLS[split]
    pool_labels = mnist[f"{part}_labels"][first:stop]
    chosen = np.empty(len(table), dtype=np.int64)
    for digit in range(10):
        rows = np.flatnonzero(digits == digit)
        candidates = first + np.flatnonzero(pool_labels == digit)
        rng = np.random.default_rng([seed, _SPLIT_CODES[split], _IMAGE, digit])
        chosen[rows] = rng.choice(candidates, size=len(rows), replace=False)

    rng = np.random.default_rng([seed, _SPLIT_CODES[split], _TEXT])
    templates = rng.integers(len(TEMPLATES), size=len(table))
    words = [DIGIT_WORDS[d] for d in digits]
    texts = [
        TEMPLATES[t].format(word=word, numeral=d)
        for t, word, d in zip(templates, words, digits, strict=True)
    ]
    frame = pd.DataFrame(
        {
            "id": table["name"].to_numpy(),  # the FSDD file stem, such as 7_jackson_32
            "text": texts,
            "digit": words,
            "speaker": table["speaker"].astype(str).to_numpy(),
            "mnist_index": chosen,
            "index": table["index"].to_numpy(),  # for `_stratified`, not written
        }
    )
    images = np.ascontiguousarray(mnist[f"{part}_images"][chosen])  # [N, 28, 28] uint8
    audio = np.stack([fix_length(waves[i], CLIP_SAMPLES) for i in mine]).astype(np.float32)
    return frame, images, audio  # audio: [N, CLIP_SAMPLES]


def _stratified(frame: pd.DataFrame, n: int) -> np.ndarray:
    """Positions of `n` rows spread evenly over the digits and, within a digit, over
    indices and speakers, in row order.

    Within digit d the rows are ordered by (index, speaker rotated by d), so the first
    rows of different digits come from different speakers; then rows are taken round
    robin over the digits (every digit's first row, then every digit's second, ...)."""
    digit = frame["digit"].map({w: i for i, w in enumerate(DIGIT_WORDS)}).to_numpy()
    speakers = sorted(frame["speaker"].unique())
    code = frame["speaker"].map({s: i for i, s in enumerate(speakers)}).to_numpy()
    keys = pd.DataFrame(
        {"digit": digit, "index": frame["index"].to_numpy(), "turn": (code - digit) % len(speakers)}
    )
    order = keys.sort_values(["index", "turn"], kind="stable")
    order["rank"] = order.groupby("digit", sort=False).cumcount()
    picked = order.sort_values(["rank", "digit"], kind="stable").index[:n]
    return np.sort(picked.to_numpy())


def _readme(
    counts: dict[str, int],
    seed: int,
    subset: int | None,
    mnist_dir: str | Path,
    fsdd_dir: str | Path,
) -> str:
    def pool(split: str) -> str:
        part, first, stop = _IMAGE_POOLS[split]
        return f"{part} {first:,}-{stop - 1:,}" if stop is not None else f"{part} (all)"

    table = "\n".join(
        f"| {split} | {counts[split]:,} | {RECORDING_POOLS[split].start}-"
        f"{RECORDING_POOLS[split].stop - 1} | {pool(split)} |"
        for split in SPLITS
    )
    templates = ", ".join(f'"{t}"' for t in TEMPLATES)
    # names the old import path (still valid) so that generated folders stay byte-identical
    return f"""# Digits (spoken, handwritten, written)

Built by Plait (`plait.data.digits.build_digits`) from the original Free Spoken Digit
Dataset and MNIST files, for aligning audio, images and text of the digits 0-9.

- Sources: MNIST `{mnist_dir}`, FSDD `{fsdd_dir}`
- Parameters: seed {seed}, subset {subset}

## Splits

One row per FSDD recording; the split follows the recording index (0-49 per speaker and
digit), index 0-4 being FSDD's official test split.

| split | rows | FSDD recording index | MNIST images |
| --- | ---: | --- | --- |
{table}

All six speakers are in every split. No recording and no MNIST image is in two splits.
A subset keeps N rows per split, balanced over digits and spread over speakers.

## Columns (`train.csv`, `valid.csv`, `test.csv`)

- `id`: the FSDD recording, such as `7_jackson_32` (digit, speaker, index).
- `audio`: `audio_<split>.npy#row`, a float32 waveform in [-1, 1] at {SAMPLE_RATE} Hz, the
  recording centre-cropped or zero-padded (centred) to {CLIP_SAMPLES:,} samples.
- `image`: `image_<split>.npy#row`, a 28x28 uint8 MNIST image of the same digit, drawn
  per split and digit without replacement (seeded).
- `text`: the digit's word in one of these phrasings (seeded): {templates}.
- `digit`: the label, the digit's word (`zero` ... `nine`).
- `speaker`: the FSDD speaker.
- `mnist_index`: the image's index in the MNIST training file (train, valid) or test
  file (test).

## Licences and credit

- MNIST: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten
  digits"; Creative Commons Attribution-ShareAlike 3.0 (CC BY-SA 3.0).
- Free Spoken Digit Dataset: the FSDD contributors, repository
  `Jakobovski/free-spoken-digit-dataset`; Creative Commons Attribution-ShareAlike 4.0
  (CC BY-SA 4.0).

Copies and further adaptations must keep the ShareAlike terms of both sources.
"""
