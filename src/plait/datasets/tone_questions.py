"""Audio reasoning clips: tone sequences with questions in plain English and answers from
a fixed vocabulary, the audio counterpart of the visual reasoning scenes.

Every clip holds 2-4 tones in a row (as many clips of each count), each with a pitch
(low, middle, high) and a length (short, long), synthesised as the captioned tones are
(`plait.datasets.tone_captions.tone_audio`: 16 kHz mono 16-bit WAV). Tones are named by
position: "first", "second", "third", and always "last" for the final one. Each clip gets
`questions` questions, cycling through six types, three non-relational (about the clip or
one tone) and three relational (comparing tones):

    count          "how many tones are there?"                                    3
    pitch          "what is the pitch of the second tone?"                        high
    length         "is the last tone short or long?"                              long
    compare_pitch  "is the last tone higher or lower than the first tone?"        lower
    compare_length "which is longer, the first tone or the last tone?"            first
    same_pitch     "how many tones have the same pitch as the first tone, itself included?"  2

Answers are one of `ANSWERS` (`same` when two compared tones share a pitch or a length);
`question_type` names the type and `relation` says `non-relational` or `relational`.
Every answer is computed from the clip's tones, which the `tones` column writes down in
order (`length pitch;...`), so a reader can check any row. Answers are balanced where that
is free: counts, pitches, lengths and higher / lower / same follow from uniform draws, and
`compare_length` picks first / later / same equally often when the clip allows;
`same_pitch` is not balanced (1 and 2 are the common answers).

Deterministic: streams keyed on `(seed, split, clip, purpose)` as the other builders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from plait.datasets.demo import check_counts, row_rng, write_splits
from plait.datasets.tone_captions import LENGTHS_S, PITCHES_HZ, SAMPLE_RATE, tone_wav
from plait.utils.io import atomic_write_text

__all__ = [
    "ANSWERS",
    "COLUMNS",
    "MAX_TONES",
    "MIN_TONES",
    "NON_RELATIONAL",
    "POSITIONS",
    "QUESTION_TYPES",
    "RELATIONAL",
    "Tone",
    "answer",
    "clip_tones",
    "generate_tone_questions",
    "position_name",
    "question_text",
]

Tone = tuple[str, str]  # (length, pitch), e.g. ("short", "high")

NON_RELATIONAL: tuple[str, ...] = ("count", "pitch", "length")
RELATIONAL: tuple[str, ...] = ("compare_pitch", "compare_length", "same_pitch")
QUESTION_TYPES: tuple[str, ...] = NON_RELATIONAL + RELATIONAL
MIN_TONES, MAX_TONES = 2, 4
POSITIONS: tuple[str, ...] = ("first", "second", "third", "last")
ANSWERS: tuple[str, ...] = (
    *(str(n) for n in range(1, MAX_TONES + 1)), *PITCHES_HZ, *LENGTHS_S,
    "higher", "lower", "same", *POSITIONS,
)  # fmt: skip
COLUMNS: tuple[str, ...] = (
    "id", "audio", "question", "answer", "question_type", "relation", "clip", "tones",
)  # fmt: skip

_TONES, _AUDIO, _QUESTIONS = 1, 2, 3
_RANK = {pitch: rank for rank, pitch in enumerate(PITCHES_HZ)}  # low < middle < high
_TEMPLATES = {
    "count": "how many tones are there?",
    "pitch": "what is the pitch of the {a} tone?",
    "length": "is the {a} tone short or long?",
    "compare_pitch": "is the {a} tone higher or lower than the {b} tone?",
    "compare_length": "which is longer, the {a} tone or the {b} tone?",
    "same_pitch": "how many tones have the same pitch as the {a} tone, itself included?",
}
_Question = tuple[str, int, int]  # (type, tone a, tone b): indices into the clip's tones


def generate_tone_questions(
    out_dir: str | Path,
    n_train: int = 2000,
    n_valid: int = 200,
    n_test: int = 200,
    seed: int = 0,
    questions: int = 6,
    progress: bool = False,
) -> dict[str, Path]:
    """Write the data set into `out_dir`; return {split: manifest path}.

    `n_*` count clips (sounds); each has `questions` rows. Writes `train.csv`,
    `valid.csv`, `test.csv` (columns `COLUMNS`), `audio/clip-<n>.wav` and `README.md`.

    Raises:
        ValueError: a negative or non-integer size, seed or question count.
    """
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    check_counts({**{f"n_{s}": n for s, n in sizes.items()}, "seed": seed, "questions": questions})
    out = Path(out_dir)
    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    for stale in audio_dir.glob("clip-*.wav"):
        stale.unlink()

    def rows_of(split: str, i: int, number: int) -> list[list[str]]:
        clip_id = f"clip-{number:05d}"
        tones = clip_tones(int(seed), split, i)
        wav = tone_wav(row_rng(int(seed), split, i, _AUDIO), tones)
        (audio_dir / f"{clip_id}.wav").write_bytes(wav)  # manifests last, atomically
        listed = ";".join(f"{length} {pitch}" for length, pitch in tones)
        asked = _questions(row_rng(int(seed), split, i, _QUESTIONS), tones, int(questions))
        return [
            [f"{clip_id}-q{q}", f"audio/{clip_id}.wav", question_text(kind, len(tones), a, b),
             answer(tones, kind, a, b), kind, _family(kind), clip_id, listed]
            for q, (kind, a, b) in enumerate(asked)
        ]  # fmt: skip

    paths = write_splits(out, sizes, COLUMNS, rows_of, progress=progress,
                         description="synthesising clips")  # fmt: skip
    atomic_write_text(out / "README.md", _readme(sizes, int(seed), int(questions)))
    return paths


def clip_tones(seed: int, split: str, index: int) -> list[Tone]:
    """The (length, pitch) tones of clip `index` of `split`, in order: 2-4 of them, each
    pitch and length drawn uniformly (every pairing occurs in every split)."""
    rng = row_rng(seed, split, index, _TONES)
    count = int(rng.integers(MIN_TONES, MAX_TONES + 1))
    lengths, pitches = list(LENGTHS_S), list(PITCHES_HZ)
    return [
        (lengths[int(rng.integers(len(lengths)))], pitches[int(rng.integers(len(pitches)))])
        for _ in range(count)
    ]


def position_name(index: int, count: int) -> str:
    """How a question names tone `index` of `count`: first, second, third, or last."""
    return "last" if index == count - 1 else POSITIONS[index]


def _questions(rng: np.random.Generator, tones: list[Tone], count: int) -> list[_Question]:
    """(type, a, b) of each question: types in turn from a random start, so every type is
    asked equally often (to within one per clip); the tones asked about at random."""
    start = int(rng.integers(len(QUESTION_TYPES)))
    asked = []
    for q in range(count):
        kind = QUESTION_TYPES[(start + q) % len(QUESTION_TYPES)]
        if kind == "compare_length":
            asked.append((kind, *_length_pair(rng, tones)))
            continue
        a, b = (int(i) for i in rng.choice(len(tones), size=2, replace=False))
        asked.append((kind, a, b))
    return asked


def _length_pair(rng: np.random.Generator, tones: list[Tone]) -> tuple[int, int]:
    """Two tones (earlier first) to compare by length, picked so that the answer (the
    earlier one, the later one, or `same`) is drawn evenly among the answers this clip
    allows: uniform pairs would answer `same` half the time."""
    pairs = [(a, b) for a in range(len(tones)) for b in range(a + 1, len(tones))]
    by_answer: dict[str, list[tuple[int, int]]] = {}
    for a, b in pairs:
        key = "same" if tones[a][0] == tones[b][0] else ("a" if tones[a][0] == "long" else "b")
        by_answer.setdefault(key, []).append((a, b))
    keys = sorted(by_answer)
    chosen = by_answer[keys[int(rng.integers(len(keys)))]]
    return chosen[int(rng.integers(len(chosen)))]


def question_text(kind: str, count: int, a: int, b: int) -> str:
    """The English question of type `kind` about tones `a` (and `b`) of a `count`-tone clip."""
    return _TEMPLATES[kind].format(a=position_name(a, count), b=position_name(b, count))


def answer(tones: list[Tone], kind: str, a: int, b: int) -> str:
    """The answer (one of `ANSWERS`) to question `kind` about tones `a` (and `b`)."""
    (length_a, pitch_a), (length_b, pitch_b) = tones[a], tones[b]
    if kind == "count":
        return str(len(tones))
    if kind == "pitch":
        return pitch_a
    if kind == "length":
        return length_a
    if kind == "compare_pitch":
        if pitch_a == pitch_b:
            return "same"
        return "higher" if _RANK[pitch_a] > _RANK[pitch_b] else "lower"
    if kind == "compare_length":
        if length_a == length_b:
            return "same"
        longer = a if length_a == "long" else b
        return position_name(longer, len(tones))
    if kind == "same_pitch":
        return str(sum(pitch == pitch_a for _, pitch in tones))
    raise ValueError(f"unknown question type {kind!r}; types: {', '.join(QUESTION_TYPES)}")


def _family(kind: str) -> str:
    """The `relation` column of a question type."""
    return "relational" if kind in RELATIONAL else "non-relational"


def _readme(sizes: dict[str, int], seed: int, questions: int) -> str:
    counts = ", ".join(f"`n_{s}={n}`" for s, n in sizes.items())
    example = [("short", "low"), ("long", "high"), ("short", "low")]
    kinds = "\n".join(
        f"| `{k}` | {_family(k)} | {question_text(k, 3, 0, 2)} | {answer(example, k, 0, 2)} |"
        for k in QUESTION_TYPES
    )
    bands = ", ".join(f"{p} {lo:.0f}-{hi:.0f} Hz" for p, (lo, hi) in PITCHES_HZ.items())
    spans = ", ".join(f"{n} {lo:.2f}-{hi:.2f} s" for n, (lo, hi) in LENGTHS_S.items())
    return f"""# Plait audio reasoning clips (tone questions)

Synthetic, generated by `plait.datasets.tone_questions.generate_tone_questions` with
{counts}, `seed={seed}`, `questions={questions}`; the same arguments give identical files.

- `train.csv`, `valid.csv`, `test.csv`: columns `{", ".join(COLUMNS)}`, one question per
  row, {questions} per sound (`clip`). `tones` lists the clip's tones in order as
  `length pitch`, separated by `;`: every answer follows from it.
- `audio/<clip>.wav`: {SAMPLE_RATE} Hz mono 16-bit, {MIN_TONES}-{MAX_TONES} tones with short
  gaps (at most about 2.25 s). Pitches: {bands}; lengths: {spans}.

Tones are named first, second, third and, always for the final one, last.
Answers: {", ".join(ANSWERS)}.

| question_type | relation | example (clip: short low, long high, short low) | answer |
| --- | --- | --- | --- |
{kinds}
"""
