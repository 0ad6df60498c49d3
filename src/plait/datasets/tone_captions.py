"""Captioned tone sequences: the audio counterpart of the captioned scenes.

Each clip is 2-4 tones in a row; each tone has a pitch (low, middle, high: fundamentals
in 200-300, 600-800 and 1800-2400 Hz) and a length (short 0.12-0.18 s, long 0.35-0.45 s),
and the caption says them in order:

    "a short high tone, then a long low tone"
    "three tones: long middle, short low, short high"

The order matters (the same tones in another order is another caption), which is what a
captioner over audio must hear. As in the scenes, a held-out combination tests
composition: `HELD_OUT` pitch-length pairs never occur in train/valid/test and occur in
every clip of `test_heldout.csv`. 16 kHz mono 16-bit WAVs; deterministic per seed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from plait.datasets.demo import check_counts, csv_text, noisy_pcm16, row_rng
from plait.utils.io import atomic_write_text

__all__ = [
    "COLUMNS",
    "HELD_OUT",
    "LENGTHS_S",
    "PITCHES_HZ",
    "SAMPLE_RATE",
    "caption",
    "generate_tone_captions",
    "tone_audio",
    "tone_wav",
]

SAMPLE_RATE = 16_000
PITCHES_HZ: dict[str, tuple[float, float]] = {
    "low": (200.0, 300.0),
    "middle": (600.0, 800.0),
    "high": (1800.0, 2400.0),
}
LENGTHS_S: dict[str, tuple[float, float]] = {"short": (0.12, 0.18), "long": (0.35, 0.45)}
HELD_OUT: frozenset[tuple[str, str]] = frozenset({("long", "high")})
COLUMNS: tuple[str, ...] = ("id", "audio", "caption", "tones")
REFERENCES = 3

_TONES, _AUDIO, _TEXT = 1, 2, 3
_NUMBERS = {2: "two", 3: "three", 4: "four"}
_GAP_S = (0.06, 0.1)


def generate_tone_captions(
    out_dir: str | Path,
    n_train: int = 1000,
    n_valid: int = 100,
    n_test: int = 100,
    n_heldout: int = 100,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the data set into `out_dir`; return {split: manifest path} plus
    `"references"` (`id, caption`: `REFERENCES` more captions per clip)."""
    sizes = {"train": n_train, "valid": n_valid, "test": n_test, "test_heldout": n_heldout}
    check_counts({**{f"n_{s}": n for s, n in sizes.items()}, "seed": seed})
    out = Path(out_dir)
    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    for stale in audio_dir.glob("tones-*.wav"):
        stale.unlink()
    paths: dict[str, Path] = {}
    references: list[list[str]] = []
    first_id = 1
    for split, n in sizes.items():
        rows: list[list[str]] = []
        for i in range(int(n)):
            row_id = f"tones-{first_id + i:05d}"
            tones = _tones(row_rng(int(seed), split, i, _TONES), split)
            wav = tone_wav(row_rng(int(seed), split, i, _AUDIO), tones)
            (audio_dir / f"{row_id}.wav").write_bytes(wav)
            text_rng = row_rng(int(seed), split, i, _TEXT)
            captions = [caption(text_rng, tones) for _ in range(REFERENCES + 1)]
            listed = ";".join(f"{length} {pitch}" for length, pitch in tones)
            rows.append([row_id, f"audio/{row_id}.wav", captions[0], listed])
            references.extend([row_id, c] for c in captions[1:])
        paths[split] = out / f"{split}.csv"
        atomic_write_text(paths[split], csv_text(COLUMNS, rows))
        first_id += int(n)
    paths["references"] = out / "references.csv"
    atomic_write_text(paths["references"], csv_text(("id", "caption"), references))
    return paths


def _tones(rng: np.random.Generator, split: str) -> list[tuple[str, str]]:
    """(length, pitch) per tone; held-out pairs only (and always) in `test_heldout`."""
    pairs = [(length, pitch) for length in LENGTHS_S for pitch in PITCHES_HZ]
    seen = [p for p in pairs if p not in HELD_OUT]
    count = int(rng.integers(2, 5))
    tones = [seen[int(i)] for i in rng.integers(len(seen), size=count)]
    if split == "test_heldout":
        held = sorted(HELD_OUT)
        tones[int(rng.integers(count))] = held[int(rng.integers(len(held)))]
    return tones


def caption(rng: np.random.Generator, tones: list[tuple[str, str]]) -> str:
    """One true sentence naming every tone in order, in one of two forms."""
    if rng.random() < 0.5:
        parts = [f"a {length} {pitch} tone" for length, pitch in tones]
        return ", then ".join(parts)
    listed = ", ".join(f"{length} {pitch}" for length, pitch in tones)
    return f"{_NUMBERS[len(tones)]} tones: {listed}"


def tone_wav(rng: np.random.Generator, tones: list[tuple[str, str]]) -> bytes:
    """A 16 kHz mono 16-bit WAV file (its bytes) of `tone_audio(rng, tones)`; the tone
    question builder shares it, so both data sets sound alike."""
    wav = io.BytesIO()
    sf.write(wav, tone_audio(rng, tones), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return wav.getvalue()


def tone_audio(rng: np.random.Generator, tones: list[tuple[str, str]]) -> np.ndarray:
    """int16 samples: the (length, pitch) tones in order with short gaps, a little onset
    and noise; the exact frequency and duration of each tone are drawn from `rng` within
    its pitch band and length range."""
    pieces = [np.zeros(int(rng.uniform(0.01, 0.05) * SAMPLE_RATE))]
    for length, pitch in tones:
        seconds = rng.uniform(*LENGTHS_S[length])
        f0 = float(np.exp(rng.uniform(*np.log(PITCHES_HZ[pitch]))))
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        tone = np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi))
        tone += 0.2 * np.sin(4 * np.pi * f0 * t)  # one weak harmonic
        ramp = int(0.008 * SAMPLE_RATE)
        tone[:ramp] *= np.linspace(0.0, 1.0, ramp)
        tone[-ramp:] *= np.linspace(1.0, 0.0, ramp)
        pieces += [tone * rng.uniform(0.7, 1.0), np.zeros(int(rng.uniform(*_GAP_S) * SAMPLE_RATE))]
    return noisy_pcm16(np.concatenate(pieces), rng, max_noise=0.05)
