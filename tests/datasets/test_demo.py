"""The demo dataset: deterministic, balanced, complete, and each factor in one modality."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from plait.datasets.demo import (
    AUDIO_SECONDS,
    BUSY_WORDS,
    CALM_WORDS,
    CLASS_NAMES,
    COLUMNS,
    IMAGE_SIZE,
    SAMPLE_RATE,
    generate_demo,
    label_factors,
)

N_TRAIN, N_TEST = 256, 64

# Words that would leak the image or audio factor into the caption.
SHAPE_WORDS = {"circle", "circular", "round", "square", "squares", "box", "ring", "disc"}
SHAPE_WORDS |= {"dot", "ball", "oval", "rectangle", "cube", "corner", "corners"}
PITCH_WORDS = {"low", "high", "pitch", "tone", "deep", "shrill", "bass", "treble", "hum"}
PITCH_WORDS |= {"whistle", "beep", "frequency", "hz", "squeak", "rumble", "sharp", "flat"}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    train = generate_demo(out, n_train=N_TRAIN, n_test=N_TEST, seed=0)
    assert train == out / "train.csv"
    return out


@pytest.fixture(scope="module")
def rows(demo: Path) -> list[dict[str, str]]:
    return read_rows(demo / "train.csv") + read_rows(demo / "test.csv")


# --- crude, non-neural detectors, one per factor ------------------------------------


def _erode(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1, constant_values=False)
    h, w = mask.shape
    out = np.ones_like(mask)
    for dy in range(3):
        for dx in range(3):
            out &= padded[dy : dy + h, dx : dx + w]
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1, constant_values=False)
    h, w = mask.shape
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of `mask` (a flood fill; images are 32x32)."""
    seen = np.zeros_like(mask)
    best: list[tuple[int, int]] = []
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        stack, region = [start], []
        while stack:
            y, x = stack.pop()
            region.append((y, x))
            for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= yy < mask.shape[0] and 0 <= xx < mask.shape[1]:
                    if mask[yy, xx] and not seen[yy, xx]:
                        seen[yy, xx] = True
                        stack.append((yy, xx))
        if len(region) > len(best):
            best = region
    out = np.zeros_like(mask)
    for y, x in best:
        out[y, x] = True
    return out


def detect_shape(pixels: np.ndarray) -> str | None:
    """Background = the border's median colour; the blob = the largest region far from
    it after an opening (which drops thin lines and noise). A square is filled, a circle
    is drawn as a ring: look at the middle of the blob's bounding box, where a square
    has its own colour and a ring shows the background through its hole."""
    image = pixels.astype(np.float64)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    background = np.median(border, axis=0)
    far = np.linalg.norm(image - background, axis=2) > 45
    blob = _largest_component(_dilate(_erode(far)))
    if blob.sum() < 16:
        return None  # nothing visible
    ys, xs = np.nonzero(blob)
    cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    hy, hx = max(1, (ys.max() - ys.min()) // 5), max(1, (xs.max() - xs.min()) // 5)
    middle = far[cy - hy : cy + hy + 1, cx - hx : cx + hx + 1]
    return "square" if middle.mean() > 0.5 else "circle"


def detect_mood(caption: str) -> str | None:
    words = re.findall(r"[a-z]+", caption.lower())
    calm = sum(w in CALM_WORDS for w in words)
    busy = sum(w in BUSY_WORDS for w in words)
    if calm == busy:
        return None
    return "calm" if calm > busy else "busy"


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[np.argmax(spectrum)])


def detect_pitch(samples: np.ndarray) -> str:
    return "high" if peak_hz(samples) > 600 else "low"


def load_image(root: Path, rel: str) -> np.ndarray:
    with Image.open(root / rel) as image:
        return np.asarray(image.convert("RGB"))


def load_audio(root: Path, rel: str) -> np.ndarray:
    samples, rate = sf.read(root / rel, dtype="int16")
    assert rate == SAMPLE_RATE
    return samples


# --- tests ----------------------------------------------------------------------------


def test_class_names() -> None:
    assert len(CLASS_NAMES) == 8 == len(set(CLASS_NAMES))
    assert CLASS_NAMES[0] == "circle-calm-low" and CLASS_NAMES[-1] == "square-busy-high"
    factors = [label_factors(name) for name in CLASS_NAMES]
    assert len(set(factors)) == 8
    with pytest.raises(ValueError):
        label_factors("triangle-calm-low")


def test_word_lists_are_clean() -> None:
    assert not set(CALM_WORDS) & set(BUSY_WORDS)
    assert not (set(CALM_WORDS) | set(BUSY_WORDS)) & (SHAPE_WORDS | PITCH_WORDS)


def test_files_layout_and_columns(demo: Path) -> None:
    assert (demo / "README.md").read_text().startswith("# Plait demo dataset")
    for split, n, first in (("train", N_TRAIN, 1), ("test", N_TEST, N_TRAIN + 1)):
        with open(demo / f"{split}.csv", newline="") as handle:
            reader = csv.reader(handle)
            assert tuple(next(reader)) == COLUMNS
        split_rows = read_rows(demo / f"{split}.csv")
        assert len(split_rows) == n
        assert [r["id"] for r in split_rows] == [f"demo-{first + i:05d}" for i in range(n)]


def test_every_referenced_file_exists_and_loads(demo: Path, rows: list[dict[str, str]]) -> None:
    images = {r["image"] for r in rows if r["image"]}
    audios = {r["audio"] for r in rows if r["audio"]}
    for rel in images:
        assert not Path(rel).is_absolute() and rel.startswith("images/")
        pixels = load_image(demo, rel)
        assert pixels.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and pixels.dtype == np.uint8
    for rel in audios:
        assert not Path(rel).is_absolute() and rel.startswith("audio/")
        info = sf.info(str(demo / rel))
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
        assert info.frames == int(SAMPLE_RATE * AUDIO_SECONDS)
        assert np.abs(load_audio(demo, rel)).max() > 1000  # not silent
    # No stray files: exactly the referenced ones were written.
    assert {f"images/{p.name}" for p in (demo / "images").iterdir()} == images
    assert {f"audio/{p.name}" for p in (demo / "audio").iterdir()} == audios


def test_labels_are_balanced(demo: Path) -> None:
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        labels = [r["label"] for r in read_rows(demo / f"{split}.csv")]
        counts = {name: labels.count(name) for name in CLASS_NAMES}
        assert set(labels) <= set(CLASS_NAMES)
        assert max(counts.values()) - min(counts.values()) <= 1
        assert sum(counts.values()) == n
        # Shuffled, not in blocks.
        assert labels[:8] != sorted(labels[:8]) or labels[8:16] != sorted(labels[8:16])


def test_missing_rate_respected_and_never_all_missing(tmp_path: Path) -> None:
    for rate in (0.3, 0.6):
        out = tmp_path / str(rate)
        generate_demo(out, n_train=400, n_test=0, seed=3, missing_rate=rate)
        rows = read_rows(out / "train.csv")
        for column in ("caption", "image", "audio"):
            observed = np.mean([r[column] == "" for r in rows])
            assert abs(observed - rate) <= 0.01, (rate, column, observed)
        assert all(r["caption"] or r["image"] or r["audio"] for r in rows)

    generate_demo(tmp_path / "none", n_train=40, n_test=8, missing_rate=0.0)
    rows = read_rows(tmp_path / "none" / "train.csv") + read_rows(tmp_path / "none" / "test.csv")
    assert all(r["caption"] and r["image"] and r["audio"] for r in rows)


def test_default_missing_rate_in_both_splits(demo: Path) -> None:
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        split_rows = read_rows(demo / f"{split}.csv")
        missing = np.array(
            [[r[c] == "" for c in ("caption", "image", "audio")] for r in split_rows]
        )
        assert missing.sum(axis=0).tolist() == [round(0.05 * n)] * 3
        assert not missing.all(axis=1).any()


def _snapshot(root: Path) -> tuple[bytes, bytes, dict[str, np.ndarray], dict[str, np.ndarray]]:
    rows = read_rows(root / "train.csv") + read_rows(root / "test.csv")
    images = {r["image"]: load_image(root, r["image"]) for r in rows if r["image"]}
    audios = {r["audio"]: load_audio(root, r["audio"]) for r in rows if r["audio"]}
    return (root / "train.csv").read_bytes(), (root / "test.csv").read_bytes(), images, audios


def test_same_seed_is_identical_and_other_seed_differs(tmp_path: Path) -> None:
    snapshots = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate_demo(tmp_path / name, n_train=24, n_test=8, seed=seed, missing_rate=0.1)
        snapshots.append(_snapshot(tmp_path / name))
    (train_a, test_a, images_a, audios_a), (train_b, test_b, images_b, audios_b), other = snapshots
    assert train_a == train_b and test_a == test_b
    assert images_a.keys() == images_b.keys() and audios_a.keys() == audios_b.keys()
    assert all(np.array_equal(images_a[k], images_b[k]) for k in images_a)
    assert all(np.array_equal(audios_a[k], audios_b[k]) for k in audios_a)
    assert (tmp_path / "a" / "README.md").read_bytes() == (
        tmp_path / "b" / "README.md"
    ).read_bytes()

    train_c, test_c, images_c, audios_c = other
    assert train_c != train_a and test_c != test_a
    shared = images_a.keys() & images_c.keys()
    assert shared and not any(np.array_equal(images_a[k], images_c[k]) for k in shared)
    shared = audios_a.keys() & audios_c.keys()
    assert shared and not any(np.array_equal(audios_a[k], audios_c[k]) for k in shared)


def test_rerun_into_same_folder_replaces_files(tmp_path: Path) -> None:
    generate_demo(tmp_path, n_train=40, n_test=8, seed=1)
    generate_demo(tmp_path, n_train=16, n_test=8, seed=2)
    rows = read_rows(tmp_path / "train.csv") + read_rows(tmp_path / "test.csv")
    assert len(rows) == 24
    written = {f"images/{p.name}" for p in (tmp_path / "images").iterdir()}
    assert written == {r["image"] for r in rows if r["image"]}


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_demo(tmp_path, n_train=-1)
    with pytest.raises(ValueError):
        generate_demo(tmp_path, seed=-3)
    with pytest.raises(ValueError):
        generate_demo(tmp_path, missing_rate=1.0)


def _accuracy(pairs: list[tuple[str | None, str]]) -> float:
    return float(np.mean([predicted == truth for predicted, truth in pairs]))


def test_each_factor_is_recoverable_from_its_own_modality(
    demo: Path, rows: list[dict[str, str]]
) -> None:
    shape, mood, pitch = [], [], []
    for r in rows:
        s, m, p = label_factors(r["label"])
        if r["image"]:
            shape.append((detect_shape(load_image(demo, r["image"])), s))
        if r["caption"]:
            mood.append((detect_mood(r["caption"]), m))
        if r["audio"]:
            pitch.append((detect_pitch(load_audio(demo, r["audio"])), p))
    for name, pairs in (("shape", shape), ("mood", mood), ("pitch", pitch)):
        accuracy = _accuracy(pairs)
        # Recoverable, but not perfectly: some cues are deliberately ambiguous.
        assert 0.85 <= accuracy < 1.0, (name, accuracy)


def test_each_factor_is_absent_from_the_other_modalities(
    demo: Path, rows: list[dict[str, str]]
) -> None:
    for r in rows:
        words = set(re.findall(r"[a-z]+", r["caption"].lower()))
        assert not words & (SHAPE_WORDS | PITCH_WORDS), r["caption"]

    # A modality's detector, scored against another modality's factor, is at chance.
    complete = [r for r in rows if r["caption"] and r["image"] and r["audio"]]
    assert len(complete) > 200
    predictions = {
        "image": [detect_shape(load_image(demo, r["image"])) for r in complete],
        "text": [detect_mood(r["caption"]) for r in complete],
        "audio": [detect_pitch(load_audio(demo, r["audio"])) for r in complete],
    }
    as_binary = {
        "image": [p == "square" for p in predictions["image"]],
        "text": [p == "busy" for p in predictions["text"]],
        "audio": [p == "high" for p in predictions["audio"]],
    }
    truths = {
        "shape": [label_factors(r["label"])[0] == "square" for r in complete],
        "mood": [label_factors(r["label"])[1] == "busy" for r in complete],
        "pitch": [label_factors(r["label"])[2] == "high" for r in complete],
    }
    own = {"image": "shape", "text": "mood", "audio": "pitch"}
    for modality, predicted in as_binary.items():
        for factor, truth in truths.items():
            if factor == own[modality]:
                continue
            agreement = float(np.mean(np.array(predicted) == np.array(truth)))
            assert 0.35 < agreement < 0.65, (modality, factor, agreement)

    # Image colour and audio loudness carry no label information either.
    brightness = np.array([load_image(demo, r["image"]).mean() for r in complete])
    loudness = np.array([np.abs(load_audio(demo, r["audio"])).max() for r in complete])
    labels = np.array([CLASS_NAMES.index(r["label"]) for r in complete])
    for feature in (brightness, loudness):
        for bit in range(3):
            ones = (labels >> bit) & 1
            correlation = abs(np.corrcoef(feature, ones)[0, 1])
            assert correlation < 0.25, (bit, correlation)
