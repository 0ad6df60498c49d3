"""Generated retrieval data: one concept per row, visible in all three modalities.

`plait.datasets.demo` hides a different label factor in each modality, which is what fusion
needs. Alignment (CLIP style) needs the opposite: the SAME content in every modality, so
that an image, a caption and a sound of one row can find each other. Here every row is
one CONCEPT, a colour and a shape (4 x 4 = 16 concepts, such as ``"red triangle"``, in the
``concept`` column), and each modality shows both halves of it:

* IMAGE: a 32x32 RGB picture of the filled shape (circle, square, triangle pointing up
  or down, plus-shaped cross) in its colour with jitter of up to +-25 per channel, 14-24
  px across at a random position, over a low-saturation grey background with 0-2 grey
  distractor lines and Gaussian pixel noise;
* CAPTION: a template sentence naming the colour and the shape, often by a synonym
  ("crimson", "three-sided shape", "plus sign"), and, in some templates, the real size
  ("small", "large") and position ("near the top left") of the shape in the image, plus
  now and then a neutral filler sentence, so captions of one concept are varied and a
  caption can prefer its own image over others of the same concept;
* AUDIO: a 0.5 s, 16 kHz clip of beeps: the colour sets the pitch band of the
  fundamental (red 220-320 Hz, green 500-700 Hz, blue 1100-1500 Hz, yellow 2400-3200 Hz;
  each band about 1.6x above the previous one's top) and the shape sets the rhythm, the
  number of beeps (circle 1, cross 2, triangle 3, square 4: a shape's corners or bars)
  sharing 0.22-0.28 s of tone (one long tone ... four short beeps), with random beep and
  gap lengths, onset, up to two weak harmonics, loudness and white noise.

Any two modalities can therefore be aligned, and the concept label gives zero-shot class
names and label-level retrieval relevance. Nothing is ambiguous on purpose: the data is
for showing retrieval working in a minute on a CPU (`plait demo retrieval`), not for
measuring a hard benchmark.

Everything is drawn from ``numpy.random.Generator`` streams keyed on
``(seed, split, row, purpose)``, as in `plait.datasets.demo`: the same arguments give
byte-identical CSVs and identical pixels and samples, and one row's content does not
depend on the number of rows. The shape's size and position come from their own stream,
shared by the image and the caption that describes them.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from plait.datasets.demo import check_counts, csv_text, noisy_pcm16, row_rng
from plait.datasets.scenes import shape_outline
from plait.utils.io import atomic_write_text

__all__ = [
    "AUDIO_SECONDS",
    "BEEPS",
    "COLOURS",
    "COLOUR_RGB",
    "COLUMNS",
    "CONCEPTS",
    "IMAGE_SIZE",
    "PITCH_BANDS_HZ",
    "SAMPLE_RATE",
    "SHAPES",
    "generate_shapes",
]

COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
# Concept index = 4 * colour + shape: "red circle", "red square", ..., "yellow cross".
CONCEPTS: tuple[str, ...] = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)
COLUMNS: tuple[str, ...] = ("id", "caption", "image", "audio", "concept")
SPLITS: tuple[str, ...] = ("train", "valid", "test")

IMAGE_SIZE = 32
SAMPLE_RATE = 16_000
AUDIO_SECONDS = 0.5

COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 35),
    "green": (40, 170, 60),
    "blue": (45, 85, 225),
    "yellow": (235, 205, 35),
}
PITCH_BANDS_HZ: dict[str, tuple[float, float]] = {
    "red": (220.0, 320.0),
    "green": (500.0, 700.0),
    "blue": (1100.0, 1500.0),
    "yellow": (2400.0, 3200.0),
}
BEEPS: dict[str, int] = {"circle": 1, "cross": 2, "triangle": 3, "square": 4}

# The first word of each tuple is the class name's own word; it is used half the time.
_COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald", "grass-green"),
    "blue": ("blue", "cobalt", "azure"),
    "yellow": ("yellow", "golden", "lemon"),
}
_SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round shape", "dot"),
    "square": ("square", "box", "four-sided shape", "block"),
    "triangle": ("triangle", "three-sided shape", "wedge"),
    "cross": ("cross", "plus sign", "plus shape"),
}
_TEMPLATES: tuple[str, ...] = (
    "a {size} {colour} {shape}",
    "{colour} {shape}",
    "there is a {shape}, coloured {colour}, {where}",
    "a {colour} {shape} {where}",
    "the {shape} {where} is {colour}",
    "a picture of a {size} {colour} {shape} on a noisy background",
    "{size} {shape} in {colour}",
    "one {colour} {shape}, {where}",
    "a {colour} {shape}",
)
_SIZES = {
    "small": ("small", "tiny", "little"),
    "medium": ("", "medium-sized"),
    "large": ("large", "big"),
}
_FILLERS: tuple[str, ...] = (
    "a simple icon.",
    "drawn by a computer.",
    "nothing else is in the picture.",
    "seen on a screen.",
    "the background is noisy.",
    "a quick sketch.",
)

# Purpose codes for the random streams.
_CONCEPTS, _LAYOUT, _IMAGE, _TEXT, _AUDIO = 1, 2, 3, 4, 5
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class _Layout:
    """Where the shape is, in pixels of the 32x32 image (shared by image and caption)."""

    size: float  # width = height of the shape's box
    x: float  # left edge
    y: float  # top edge
    pointing_up: bool  # triangles only


def generate_shapes(
    out_dir: str | Path,
    n_train: int = 640,
    n_valid: int = 160,
    n_test: int = 160,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the shapes data set into `out_dir`; return {split: manifest path}.

    Writes ``train.csv``, ``valid.csv`` and ``test.csv`` (columns ``id, caption, image,
    audio, concept``; paths relative to the CSV folder), ``images/<id>.png`` (32x32 RGB),
    ``audio/<id>.wav`` (16 kHz mono 16-bit PCM, 0.5 s) and ``README.md``. Each split holds
    every concept ``n // 16`` or ``n // 16 + 1`` times, in shuffled order. The defaults
    take about a second to write.

    Example::

        paths = generate_shapes("shapes")  # {"train": shapes/train.csv, ...}

    Raises:
        ValueError: a negative or non-integer size or seed.
    """
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    check_counts({**{f"n_{s}": n for s, n in sizes.items()}, "seed": seed})

    out = Path(out_dir)
    image_dir, audio_dir = out / "images", out / "audio"
    image_dir.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    # Files left by an earlier run (perhaps with more rows) would confuse a reader.
    for stale in (*image_dir.glob("shapes-*.png"), *audio_dir.glob("shapes-*.wav")):
        stale.unlink()

    paths: dict[str, Path] = {}
    first_id = 1
    for split, n in sizes.items():
        rows = _generate_split(split, int(n), first_id, int(seed), image_dir, audio_dir)
        paths[split] = out / f"{split}.csv"
        atomic_write_text(paths[split], csv_text(COLUMNS, rows))
        first_id += int(n)
    atomic_write_text(out / "README.md", _readme(sizes, int(seed)))
    return paths


def _generate_split(
    split: str, n: int, first_id: int, seed: int, image_dir: Path, audio_dir: Path
) -> list[list[str]]:
    concepts = row_rng(seed, split, 0, _CONCEPTS).permutation(np.arange(n) % len(CONCEPTS))
    rows: list[list[str]] = []
    for i in range(n):
        row_id = f"shapes-{first_id + i:05d}"
        concept = CONCEPTS[int(concepts[i])]
        colour, shape = concept.split()
        layout = _layout(row_rng(seed, split, i, _LAYOUT))

        caption = _caption(row_rng(seed, split, i, _TEXT), colour, shape, layout)
        pixels = _image(row_rng(seed, split, i, _IMAGE), colour, shape, layout)
        Image.fromarray(pixels).save(image_dir / f"{row_id}.png", optimize=False)
        samples = _audio(row_rng(seed, split, i, _AUDIO), colour, shape)
        # Through memory: soundfile's close() syncs the file to disk, which is slow.
        wav = io.BytesIO()
        sf.write(wav, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
        (audio_dir / f"{row_id}.wav").write_bytes(wav.getvalue())

        rows.append([row_id, caption, f"images/{row_id}.png", f"audio/{row_id}.wav", concept])
    return rows


def _layout(rng: np.random.Generator) -> _Layout:
    size = float(rng.uniform(14.0, 24.0))
    x, y = rng.uniform(1.0, IMAGE_SIZE - 1.0 - size, size=2)
    return _Layout(size, float(x), float(y), bool(rng.random() < 0.5))


# --------------------------------------------------------------------------- caption


def _size_word(layout: _Layout) -> str:
    return "small" if layout.size < 17.5 else ("large" if layout.size > 20.5 else "medium")


def _where(layout: _Layout) -> str:
    """The shape's centre as a phrase: "near the top left", "on the right", "in the middle"."""
    cx, cy = layout.x + layout.size / 2, layout.y + layout.size / 2
    third = IMAGE_SIZE / 3
    vertical = "top" if cy < third + 2 else ("bottom" if cy > 2 * third - 2 else "")
    horizontal = "left" if cx < third + 2 else ("right" if cx > 2 * third - 2 else "")
    if vertical:
        return f"near the {vertical} {horizontal}".rstrip()
    return f"on the {horizontal}" if horizontal else "in the middle"


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    """The first word half the time, else any of the others."""
    if len(words) == 1 or rng.random() < 0.5:
        return words[0]
    return words[int(rng.integers(1, len(words)))]


def _caption(rng: np.random.Generator, colour: str, shape: str, layout: _Layout) -> str:
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    sizes = _SIZES[_size_word(layout)]
    text = template.format(
        colour=_pick(rng, _COLOUR_WORDS[colour]),
        shape=_pick(rng, _SHAPE_WORDS[shape]),
        size=sizes[int(rng.integers(len(sizes)))],
        where=_where(layout),
    )
    text = re.sub(r"\ba ([aeiou])", r"an \1", " ".join(text.split()))  # a emerald -> an
    if rng.random() < 0.25:
        filler = _FILLERS[int(rng.integers(len(_FILLERS)))]
        text = f"{text}. {filler}" if rng.random() < 0.5 else f"{filler} {text}"
    return text


# ----------------------------------------------------------------------------- image


def _polygon(shape: str, layout: _Layout, scale: int) -> list[tuple[float, float]]:
    """Corner points (supersampled pixels) of a square, triangle or cross."""
    return shape_outline(
        shape, layout.x * scale, layout.y * scale, layout.size * scale, layout.pointing_up
    )


def _image(rng: np.random.Generator, colour: str, shape: str, layout: _Layout) -> np.ndarray:
    """[32, 32, 3] uint8."""
    s = _SUPERSAMPLE
    big = IMAGE_SIZE * s
    grey = rng.uniform(60.0, 190.0) + rng.uniform(-12.0, 12.0, size=3)
    canvas = Image.new("RGB", (big, big), tuple(int(round(c)) for c in grey))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 3))):  # grey distractor lines, no hue
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, big, size=4))
        level = int(rng.integers(30, 226))
        draw.line([(x0, y0), (x1, y1)], fill=(level, level, level), width=s)

    base = np.array(COLOUR_RGB[colour], dtype=np.float64)
    fill = tuple(int(round(c)) for c in np.clip(base + rng.uniform(-25, 25, size=3), 0, 255))
    if shape == "circle":
        box = (
            layout.x * s,
            layout.y * s,
            (layout.x + layout.size) * s,
            (layout.y + layout.size) * s,
        )
        draw.ellipse(box, fill=fill)
    else:
        draw.polygon(_polygon(shape, layout, s), fill=fill)

    small = canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.float64)
    pixels = pixels + rng.normal(0.0, rng.uniform(4.0, 12.0), size=pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- audio


def _audio(rng: np.random.Generator, colour: str, shape: str) -> np.ndarray:
    """[8000] int16: `BEEPS[shape]` beeps with a fundamental in `PITCH_BANDS_HZ[colour]`."""
    n = int(SAMPLE_RATE * AUDIO_SECONDS)
    low, high = PITCH_BANDS_HZ[colour]
    f0 = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    harmonics = [
        (int(k), float(rng.uniform(0.1, 0.4)), float(rng.uniform(0, 2 * np.pi)))
        for k in rng.choice([2, 3, 4], size=int(rng.integers(0, 3)), replace=False)
        if k * f0 < SAMPLE_RATE / 2 - 500
    ]

    # The beeps share about the same total length whatever their count, so the colour is
    # about as loud in every clip and the rhythm (count and beep length) gives the shape.
    count = BEEPS[shape]
    lengths = rng.uniform(0.22, 0.28) / count * rng.uniform(0.85, 1.15, size=count)  # seconds
    gaps = rng.uniform(0.03, 0.05, size=count - 1)
    slack = AUDIO_SECONDS - lengths.sum() - gaps.sum() - 0.01
    start = rng.uniform(0.005, 0.005 + slack)
    signal = np.zeros(n)
    for j in range(count):
        m = int(lengths[j] * SAMPLE_RATE)
        t = np.arange(m) / SAMPLE_RATE
        pitch = f0 * rng.uniform(0.98, 1.02)
        phase = 2 * np.pi * pitch * t + rng.uniform(0, 2 * np.pi)
        beep = np.sin(phase)
        for k, amplitude, offset in harmonics:
            beep += amplitude * np.sin(k * phase + offset)
        ramp = max(int(rng.uniform(0.004, 0.01) * SAMPLE_RATE), 1)
        envelope = np.ones(m)
        envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
        envelope[-ramp:] = np.linspace(1.0, 0.0, ramp)
        offset_samples = int((start + lengths[:j].sum() + gaps[:j].sum()) * SAMPLE_RATE)
        signal[offset_samples : offset_samples + m] = beep * envelope * rng.uniform(0.7, 1.0)

    return noisy_pcm16(signal, rng, max_noise=0.12)


# ------------------------------------------------------------------------- files


def _readme(sizes: dict[str, int], seed: int) -> str:
    bands = ", ".join(f"{c} {lo:.0f}-{hi:.0f} Hz" for c, (lo, hi) in PITCH_BANDS_HZ.items())
    beeps = ", ".join(f"{shape} {count}" for shape, count in BEEPS.items())
    synonyms = "; ".join(
        f"{key}: {', '.join(words)}"
        for key, words in (*_COLOUR_WORDS.items(), *_SHAPE_WORDS.items())
    )
    counts = ", ".join(f"`n_{split}={n}`" for split, n in sizes.items())
    # names the old import path (still valid) so that generated folders stay byte-identical
    return f"""# Plait shapes data set (retrieval demo)

Synthetic, generated by `plait.data.shapes.generate_shapes` with {counts},
`seed={seed}`. Running it again with the same arguments gives byte-identical CSVs and
identical pixels and samples.

## Files

- `train.csv`, `valid.csv`, `test.csv`: columns `{", ".join(COLUMNS)}`. `image` and
  `audio` are paths relative to this folder. Ids run `shapes-00001` upwards through
  train, valid and test.
- `images/<id>.png`: {IMAGE_SIZE}x{IMAGE_SIZE} RGB.
- `audio/<id>.wav`: {SAMPLE_RATE} Hz mono 16-bit PCM, {AUDIO_SECONDS} s.

## One concept, three modalities

Each row is one of {len(CONCEPTS)} concepts, a colour ({", ".join(COLOURS)}) and a shape
({", ".join(SHAPES)}), in the `concept` column (such as `red triangle`). Each split holds
every concept equally often (within one), in shuffled order. All three modalities show
the whole concept, so any two of them can be aligned:

- **image**: the filled shape in its colour (jitter up to +-25 per channel), 14-24 px
  across at a random position, on a grey background with 0-2 grey lines and pixel noise.
- **caption**: a template naming the colour and the shape, half the time by a synonym
  ({synonyms}), some templates also naming the shape's true size and position in the
  image, and a neutral filler sentence in a quarter of the rows.
- **audio**: beeps whose fundamental lies in the colour's pitch band ({bands}) and whose
  count gives the shape ({beeps}; together the beeps last 0.22-0.28 s, so fewer beeps
  are longer), with random lengths, gaps, onset, up to two weak harmonics, loudness and
  white noise.

## Randomness

All values come from `numpy.random.Generator` streams seeded by
`(seed, split, row, purpose)`. Nothing depends on the clock or on Python's hash
randomisation.
"""
