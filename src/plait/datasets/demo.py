"""The built-in demo dataset: small, synthetic, deterministic, and truly multimodal.

Every row has an 8-way label made of three independent binary factors, and each
factor is visible in exactly one modality:

* shape (``circle`` / ``square``) only in the IMAGE: a 32x32 RGB picture of one shape
  (a ring or a filled square) of random colour, size and position on a noisy
  background with distractor lines;
* mood (``calm`` / ``busy``) only in the TEXT: a caption built from templates, a
  synonym of the mood, and neutral filler that never names a shape or a pitch;
* pitch (``low`` / ``high``) only in the AUDIO: a 0.5 s tone whose fundamental is
  200-400 Hz or 900-1400 Hz, with random harmonics, envelope, onset and noise.

A model that sees one modality knows one bit of three, so it can reach at most about
25% accuracy on the label; a model that fuses all three reaches about 85% (`plait demo`).
About 4% of the rows per factor are ambiguous (the cue is misleading or too weak to
read), so no single modality is trivially perfect, and ``missing_rate`` of the values
per modality are left empty (never all three of one row) to exercise missing-modality
handling.

Everything is drawn from ``numpy.random.Generator`` streams keyed on
``(seed, split, row, purpose)``: the same seed gives byte-identical CSVs and identical
pixels and samples, and a row's content does not depend on the other rows or on which
of its values happen to be missing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from plait.utils.io import atomic_write_text
from plait.utils.progress import progress_bar

__all__ = [
    "AMBIGUITY",
    "AUDIO_SECONDS",
    "BUSY_WORDS",
    "CALM_WORDS",
    "CLASS_NAMES",
    "COLUMNS",
    "HIGH_BAND_HZ",
    "IMAGE_SIZE",
    "LOW_BAND_HZ",
    "MOODS",
    "PITCHES",
    "SAMPLE_RATE",
    "SHAPES",
    "SPLIT_CODES",
    "check_counts",
    "csv_text",
    "write_splits",
    "generate_demo",
    "label_factors",
    "noisy_pcm16",
    "row_rng",
]

SHAPES: tuple[str, str] = ("circle", "square")
MOODS: tuple[str, str] = ("calm", "busy")
PITCHES: tuple[str, str] = ("low", "high")

# Class index = 4 * shape + 2 * mood + pitch, so the order is circle-calm-low,
# circle-calm-high, circle-busy-low, ..., square-busy-high.
CLASS_NAMES: tuple[str, ...] = tuple(f"{s}-{m}-{p}" for s in SHAPES for m in MOODS for p in PITCHES)

COLUMNS: tuple[str, ...] = ("id", "caption", "image", "audio", "label")

IMAGE_SIZE = 32
SAMPLE_RATE = 16_000
AUDIO_SECONDS = 0.5
LOW_BAND_HZ: tuple[float, float] = (200.0, 400.0)
HIGH_BAND_HZ: tuple[float, float] = (900.0, 1400.0)
# Between the bands (around their geometric midpoint 600 Hz): a tone here says nothing.
_MID_BAND_HZ: tuple[float, float] = (520.0, 700.0)

# Per row and factor, the chance that the modality's cue is ambiguous. Half of those
# rows get a misleading cue (the other value), half a weak one (faint shape, caption
# without a mood word, tone between the bands).
AMBIGUITY = 0.04

CALM_WORDS: tuple[str, ...] = (
    "quiet",
    "peaceful",
    "still",
    "gentle",
    "serene",
    "tranquil",
    "relaxed",
    "hushed",
    "placid",
    "restful",
    "soothing",
    "sleepy",
)
BUSY_WORDS: tuple[str, ...] = (
    "crowded",
    "noisy",
    "hectic",
    "bustling",
    "lively",
    "chaotic",
    "packed",
    "frantic",
    "rowdy",
    "teeming",
    "buzzing",
    "loud",
)

_PLACES = (
    "park",
    "harbour",
    "market",
    "station",
    "library",
    "river",
    "bridge",
    "garden",
    "beach",
    "village",
    "cafe",
    "museum",
    "lake",
    "bakery",
    "campsite",
    "playground",
)
_THINGS = (
    "a few benches",
    "old bicycles",
    "paper lanterns",
    "wooden boats",
    "some trees",
    "parked cars",
    "a fountain",
    "flower pots",
    "street lamps",
    "a red door",
    "stacked crates",
    "two umbrellas",
    "a sleeping dog",
    "fallen leaves",
)
_TIMES = ("morning", "afternoon", "evening", "weekend", "day", "night")

# Each template names the mood once ({mood}); the neutral variant leaves it out.
_TEMPLATES = (
    ("a {mood} scene near the {place} with {thing}.", "a scene near the {place} with {thing}."),
    ("the {place} feels {mood} this {time}.", "the {place} this {time}."),
    ("{thing} by the {place}, everything {mood}.", "{thing} by the {place}."),
    ("a {mood} {time} at the {place}.", "a {time} at the {place}."),
    (
        "photo of the {place} on a {mood} {time}, with {thing}.",
        "photo of the {place} one {time}, with {thing}.",
    ),
    ("it was {mood} around the {place} and {thing}.", "we walked around the {place} and {thing}."),
)
_FILLERS = (
    "someone left a bag on the ground.",
    "taken last spring.",
    "there are clouds in the sky.",
    "a dog wanders past.",
    "nothing unusual here.",
    "the light is soft.",
    "shot on an old phone.",
    "a bus stop is nearby.",
    "the paint on the wall is fading.",
    "a bird sits on a fence.",
    "the path is wet after rain.",
    "we came here by train.",
    "my friend took this one.",
    "there is a bakery across the road.",
)

_SPLITS = {"train": 1, "test": 2}
# Purpose codes for the random streams.
_LABELS, _MISSING, _IMAGE, _TEXT, _AUDIO = 1, 2, 3, 4, 5
_SUPERSAMPLE = 4


def label_factors(label: str) -> tuple[str, str, str]:
    """Split a class name such as ``"square-busy-high"`` into (shape, mood, pitch)."""
    shape, mood, pitch = label.split("-")
    if shape not in SHAPES or mood not in MOODS or pitch not in PITCHES:
        raise ValueError(f"not a demo class name: {label!r}; expected one of {CLASS_NAMES}")
    return shape, mood, pitch


def generate_demo(
    out_dir: Path,
    n_train: int = 900,
    n_test: int = 300,
    seed: int = 0,
    missing_rate: float = 0.05,
) -> Path:
    """Write the demo dataset into `out_dir` and return the path of ``train.csv``.

    Writes ``images/*.png`` (32x32 RGB), ``audio/*.wav`` (16 kHz mono 16-bit, 0.5 s),
    ``train.csv`` and ``test.csv`` (columns ``id, caption, image, audio, label``; file
    paths relative to the CSV folder; a missing value is an empty string) and
    ``README.md``. The same arguments always give the same bytes in the CSVs and the
    same pixels and samples.
    """
    check_counts({"n_train": n_train, "n_test": n_test, "seed": seed})
    if not 0.0 <= float(missing_rate) < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate!r}")

    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    audio_dir = out_dir / "audio"
    image_dir.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    # Files left by an earlier run (perhaps with more rows) would confuse a reader.
    for stale in (*image_dir.glob("demo-*.png"), *audio_dir.glob("demo-*.wav")):
        stale.unlink()

    first_id = 1
    for split, n in (("train", int(n_train)), ("test", int(n_test))):
        rows = _generate_split(
            split, n, first_id, int(seed), float(missing_rate), image_dir, audio_dir
        )
        atomic_write_text(out_dir / f"{split}.csv", csv_text(COLUMNS, rows))
        first_id += n

    atomic_write_text(
        out_dir / "README.md", _readme(int(n_train), int(n_test), int(seed), float(missing_rate))
    )
    return out_dir / "train.csv"


def _rng(seed: int, split: str, index: int, purpose: int) -> np.random.Generator:
    return row_rng(seed, split, index, purpose, codes=_SPLITS)


#: the split codes of the built-in sets' random streams (the demo's `_SPLITS` predates them)
SPLIT_CODES = {"train": 1, "valid": 2, "test": 3, "test_heldout": 4}


def row_rng(
    seed: int, split: str, index: int, purpose: int, codes: dict[str, int] = SPLIT_CODES
) -> np.random.Generator:
    """The random stream of one row's one purpose (its picture, its text, ...): the same
    numbers whatever else is generated, so a row never changes when another split's size,
    or another purpose's use of randomness, does."""
    return np.random.default_rng(np.random.SeedSequence([seed, codes[split], index, purpose]))


def _generate_split(
    split: str,
    n: int,
    first_id: int,
    seed: int,
    missing_rate: float,
    image_dir: Path,
    audio_dir: Path,
) -> list[list[str]]:
    n_classes = len(CLASS_NAMES)
    labels = _rng(seed, split, 0, _LABELS).permutation(np.arange(n) % n_classes)

    missing = _missing_mask(_rng(seed, split, 0, _MISSING), n, missing_rate)

    rows: list[list[str]] = []
    for i in range(n):
        row_id = f"demo-{first_id + i:05d}"
        label = int(labels[i])
        shape, mood, pitch = (label >> 2) & 1, (label >> 1) & 1, label & 1

        caption = "" if missing[i, 0] else _caption(_rng(seed, split, i, _TEXT), mood)

        image = ""
        if not missing[i, 1]:
            pixels = _image(_rng(seed, split, i, _IMAGE), shape)
            Image.fromarray(pixels).save(image_dir / f"{row_id}.png", optimize=False)
            image = f"images/{row_id}.png"

        audio = ""
        if not missing[i, 2]:
            samples = _audio(_rng(seed, split, i, _AUDIO), pitch)
            # Through memory: soundfile's close() syncs the file to disk, which is slow.
            wav = io.BytesIO()
            sf.write(wav, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
            (audio_dir / f"{row_id}.wav").write_bytes(wav.getvalue())
            audio = f"audio/{row_id}.wav"

        rows.append([row_id, caption, image, audio, CLASS_NAMES[label]])
    return rows


def _missing_mask(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """[n, 3] bool (text, image, audio): per modality, independently, a random
    round(rate * n) rows are missing; a row that drew all three gets one back, and that
    value goes missing in another row instead where possible."""
    count = int(round(rate * n))
    missing = np.zeros((n, 3), dtype=bool)
    for column in range(3):
        missing[rng.permutation(n)[:count], column] = True
    for row in np.flatnonzero(missing.all(axis=1)):
        column = int(rng.integers(3))
        missing[row, column] = False
        candidates = np.flatnonzero(~missing[:, column] & (missing.sum(axis=1) < 2))
        if len(candidates):
            missing[rng.choice(candidates), column] = True
    return missing


def _cue(rng: np.random.Generator, value: int) -> tuple[int, bool]:
    """Return (value the modality shows, whether the cue is weak) for one factor."""
    u = rng.random()
    if u < AMBIGUITY / 2:
        return 1 - value, False  # misleading
    if u < AMBIGUITY:
        return value, True  # weak
    return value, False


def _caption(rng: np.random.Generator, mood: int) -> str:
    shown, weak = _cue(rng, mood)
    words = CALM_WORDS if shown == 0 else BUSY_WORDS
    with_mood, without_mood = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    template = without_mood if weak else with_mood
    sentence = template.format(
        mood=words[rng.integers(len(words))],
        place=_PLACES[rng.integers(len(_PLACES))],
        thing=_THINGS[rng.integers(len(_THINGS))],
        time=_TIMES[rng.integers(len(_TIMES))],
    )
    n_fillers = int(rng.integers(0, 3))
    fillers = [_FILLERS[j] for j in rng.choice(len(_FILLERS), size=n_fillers, replace=False)]
    position = int(rng.integers(0, n_fillers + 1))
    parts = [*fillers[:position], sentence, *fillers[position:]]
    return " ".join(parts)


def _image(rng: np.random.Generator, shape: int) -> np.ndarray:
    shown, weak = _cue(rng, shape)
    s = _SUPERSAMPLE
    big = IMAGE_SIZE * s
    background = rng.integers(40, 216, size=3)
    canvas = Image.new("RGB", (big, big), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(canvas)

    # Distractor lines behind the shape, in any colour.
    for _ in range(int(rng.integers(0, 3))):
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, big, size=4))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=s)

    # Shape colour: random, but far enough from the background to be seen (or, for a
    # weak cue, only just different from it).
    if weak:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction) + 1e-12
        colour_arr: np.ndarray = np.clip(background + direction * rng.uniform(14.0, 24.0), 0, 255)
    else:
        colour_arr = rng.integers(0, 256, size=3)
        for _ in range(100):
            if np.linalg.norm(colour_arr - background) >= 100:
                break
            colour_arr = rng.integers(0, 256, size=3)
        else:
            colour_arr = np.where(background < 128, 255, 0)
    colour = tuple(int(round(c)) for c in colour_arr)

    size = int(rng.integers(14 * s, 22 * s + 1))
    x = int(rng.integers(s, big - size - s + 1))
    y = int(rng.integers(s, big - size - s + 1))
    box = [x, y, x + size - 1, y + size - 1]
    if shown == 0:
        draw.ellipse(box, outline=colour, width=4 * s)
    else:
        draw.rectangle(box, fill=colour)

    small = canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.float64)
    noise_std = rng.uniform(5.0, 14.0)
    pixels = pixels + rng.normal(0.0, noise_std, size=pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _audio(rng: np.random.Generator, pitch: int) -> np.ndarray:
    shown, weak = _cue(rng, pitch)
    band = _MID_BAND_HZ if weak else (HIGH_BAND_HZ if shown == 1 else LOW_BAND_HZ)
    f0 = float(np.exp(rng.uniform(np.log(band[0]), np.log(band[1]))))

    n = int(SAMPLE_RATE * AUDIO_SECONDS)
    duration = rng.uniform(0.2, 0.4)
    start = rng.uniform(0.0, AUDIO_SECONDS - duration - 0.01)
    m = int(duration * SAMPLE_RATE)
    t = np.arange(m) / SAMPLE_RATE

    vibrato = rng.uniform(0.0, 0.01) * np.sin(2 * np.pi * rng.uniform(3.0, 7.0) * t)
    phase = 2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi) + vibrato * f0 / 10.0
    tone = np.sin(phase)
    for k in rng.choice([2, 3, 4, 5], size=int(rng.integers(0, 4)), replace=False):
        if k * f0 < SAMPLE_RATE / 2 - 200:
            tone += rng.uniform(0.1, 0.6) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))

    attack = max(int(rng.uniform(0.005, 0.05) * SAMPLE_RATE), 1)
    release = max(int(rng.uniform(0.02, 0.1) * SAMPLE_RATE), 1)
    envelope = np.exp(-rng.uniform(0.0, 8.0) * t)
    envelope[:attack] *= np.linspace(0.0, 1.0, attack)
    envelope[-release:] *= np.linspace(1.0, 0.0, release)
    tone *= envelope

    signal = np.zeros(n)
    offset = int(start * SAMPLE_RATE)
    signal[offset : offset + m] = tone
    return noisy_pcm16(signal, rng, max_noise=0.15)


def noisy_pcm16(signal: np.ndarray, rng: np.random.Generator, max_noise: float) -> np.ndarray:
    """Peak-normalise, add background noise (a random level up to `max_noise`), scale to a
    random loudness and quantise to 16-bit PCM: the generators' shared last step."""
    signal = signal / (np.max(np.abs(signal)) + 1e-12)
    signal += rng.normal(0.0, rng.uniform(0.02, max_noise), size=len(signal))
    signal *= rng.uniform(0.3, 0.9) / (np.max(np.abs(signal)) + 1e-12)
    return np.rint(signal * 32767).astype(np.int16)


def check_counts(values: dict[str, object]) -> None:
    """The generators' sizes and seed: each a non-negative integer (numpy ints too; not bool).

    Raises:
        ValueError: naming the first bad argument.
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def csv_text(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    """A header plus rows as CSV text with Unix line ends (byte-identical per seed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def write_splits(
    out: Path,
    sizes: dict[str, int],
    columns: tuple[str, ...],
    rows_of: Callable[[str, int, int], list[list[str]]],
    *,
    progress: bool,
    description: str,
) -> dict[str, Path]:
    """The question builders' split loop: item `index` of each split gets a `number`
    counted from 1 across the splits in order; `rows_of(split, index, number)` writes its
    media and returns its manifest rows; each `<split>.csv` is written atomically once
    its items exist. Returns {split: manifest path}."""
    paths: dict[str, Path] = {}
    first = 1
    with progress_bar(progress, description, sum(sizes.values()), min_total=50) as advance:
        for split, n in sizes.items():
            rows: list[list[str]] = []
            for i in range(int(n)):
                rows.extend(rows_of(split, i, first + i))
                advance()
            paths[split] = out / f"{split}.csv"
            atomic_write_text(paths[split], csv_text(columns, rows))
            first += int(n)
    return paths


def _readme(n_train: int, n_test: int, seed: int, missing_rate: float) -> str:
    classes = "\n".join(f"| {i} | `{name}` |" for i, name in enumerate(CLASS_NAMES))
    # names the old import path (still valid) so that generated folders stay byte-identical
    return f"""# Plait demo dataset

Synthetic, generated by `plait.data.demo.generate_demo` with
`n_train={n_train}`, `n_test={n_test}`, `seed={seed}`, `missing_rate={missing_rate}`.
Running it again with the same arguments gives byte-identical CSVs and identical
pixels and audio samples.

## Files

- `train.csv`, `test.csv`: columns `{", ".join(COLUMNS)}`. `image` and `audio` are
  paths relative to this folder; an empty value means the modality is missing.
  Ids run `demo-00001` upwards through train and then test.
- `images/<id>.png`: {IMAGE_SIZE}x{IMAGE_SIZE} RGB.
- `audio/<id>.wav`: {SAMPLE_RATE} Hz mono 16-bit PCM, {AUDIO_SECONDS} s.

## How the label is hidden in the modalities

The label has 8 classes, the combinations of three independent binary factors:

| index | label |
|---|---|
{classes}

Each factor can be read from exactly one modality:

- **shape** (`circle` / `square`), image only: a ring or a filled square, 14-22 px across, at a
  random position, in a random colour (which says nothing about the label), over a
  random background with 0-2 distractor lines behind it and Gaussian pixel noise.
- **mood** (`calm` / `busy`), caption only: a template sentence with one mood synonym
  (calm: {", ".join(CALM_WORDS)}; busy: {", ".join(BUSY_WORDS)}), a random place,
  thing and time of day, and 0-2 neutral filler sentences. Captions never name a
  shape or a pitch.
- **pitch** (`low` / `high`), audio only: a tone with fundamental {LOW_BAND_HZ[0]:.0f}-{LOW_BAND_HZ[1]:.0f} Hz
  (low) or {HIGH_BAND_HZ[0]:.0f}-{HIGH_BAND_HZ[1]:.0f} Hz (high), 0-3 random harmonics, a random
  attack/decay/release envelope and onset, vibrato, and white noise.

For about {AMBIGUITY:.0%} of the rows per factor the cue is ambiguous: half of those show
the other value (a misleading caption synonym, the other shape, the other band) and
half a weak cue (a caption without a mood word, a faint shape barely different from
the background, a tone between the bands). Each factor is therefore about 97%
recoverable from its own modality and not at all from the others.

A model that uses one modality knows one factor of three and can reach at most about
25% accuracy on the 8 classes; a model that fuses all three reaches about 85% (`plait demo`).

## Missing values

Per split and per modality, independently, a random `round(missing_rate * n)` of the
values are left empty (and no file is written), but never all three of one row: a row
that drew all three gets one back, and that value goes missing in another row. Classes are
balanced: each appears `n // 8` or `n // 8 + 1` times per split, in shuffled order.

## Randomness

All values come from `numpy.random.Generator` streams seeded by
`(seed, split, row, purpose)`, so a row's content does not depend on the other rows
or on which of its values are missing. Nothing depends on the clock or on Python's
hash randomisation.
"""
