"""The digits builder on the real MNIST and FSDD files (skipped where they are absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.datasets.avmnist import CLIP_SAMPLES, TRAIN_SIZE, VALID_SIZE, read_idx
from plait.datasets.digits import COLUMNS, DIGIT_WORDS, SPLITS, build_digits

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("PLAIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
MNIST, FSDD = DATA / "mnist", DATA / "fsdd"

pytestmark = pytest.mark.skipif(
    not (MNIST / "train-images-idx3-ubyte.gz").is_file()
    or not (FSDD / "recordings.tar.xz").is_file(),
    reason=f"the real MNIST / FSDD files are not in {DATA} (set PLAIT_SHARED_DATA)",
)

SUBSET = 40


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("digits")
    return folder, build_digits(MNIST, FSDD, folder, seed=0, subset=SUBSET)


@pytest.fixture(scope="module")
def frames(built) -> dict[str, pd.DataFrame]:
    _, paths = built
    return {split: pd.read_csv(paths[split]) for split in SPLITS}


def test_files_and_columns(built, frames):
    folder, paths = built
    assert set(paths) == set(SPLITS)
    for split, frame in frames.items():
        assert paths[split] == folder / f"{split}.csv"
        assert tuple(frame.columns) == COLUMNS and len(frame) == SUBSET
        assert frame["id"].is_unique
        assert frame["audio"].tolist() == [f"audio_{split}.npy#{i}" for i in range(SUBSET)]
        assert frame["image"].tolist() == [f"image_{split}.npy#{i}" for i in range(SUBSET)]
        assert frame["digit"].value_counts().to_dict() == {w: SUBSET // 10 for w in DIGIT_WORDS}
        assert frame["speaker"].nunique() == 6  # a subset is spread over the speakers
        for text, word in zip(frame["text"], frame["digit"], strict=True):
            assert word in text
        audio = np.load(folder / f"audio_{split}.npy")
        assert audio.shape == (SUBSET, CLIP_SAMPLES) and audio.dtype == np.float32
        assert np.isfinite(audio).all() and (np.abs(audio).max(axis=1) > 0.01).all()
        assert np.abs(audio).max() <= 1.0
    readme = (folder / "README.md").read_text()
    for text in ("CC BY-SA 3.0", "CC BY-SA 4.0", "Jakobovski/free-spoken-digit-dataset", "LeCun"):
        assert text in readme


def test_splits_are_disjoint_and_follow_the_recording_index(frames):
    index = {s: frames[s]["id"].str.rsplit("_", n=1).str[1].astype(int) for s in SPLITS}
    assert index["test"].between(0, 4).all()  # FSDD's official test split
    assert index["valid"].between(5, 9).all()
    assert index["train"].between(10, 49).all()
    ids = [set(frames[s]["id"]) for s in SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    # train and valid images both come from the MNIST training file: disjoint ranges
    train_images, valid_images = frames["train"]["mnist_index"], frames["valid"]["mnist_index"]
    assert train_images.between(0, TRAIN_SIZE - 1).all()
    assert valid_images.between(TRAIN_SIZE, TRAIN_SIZE + VALID_SIZE - 1).all()
    for split in SPLITS:
        assert frames[split]["mnist_index"].is_unique


def test_images_are_mnist_digits_of_the_row_label(built, frames):
    folder, _ = built
    for part, splits in (("train", ("train", "valid")), ("t10k", ("test",))):
        labels = read_idx(MNIST / f"{part}-labels-idx1-ubyte.gz")
        images = read_idx(MNIST / f"{part}-images-idx3-ubyte.gz")
        for split in splits:
            chosen = frames[split]["mnist_index"].to_numpy()
            words = [DIGIT_WORDS[d] for d in labels[chosen]]
            assert words == frames[split]["digit"].tolist()
            stored = np.load(folder / f"image_{split}.npy")
            assert stored.dtype == np.uint8 and stored.shape == (SUBSET, 28, 28)
            np.testing.assert_array_equal(stored, images[chosen])


def test_manifests_load_through_plait(built, tmp_path):
    _, paths = built
    raw = {
        "name": "digits",
        "output_dir": str(tmp_path),
        "data": {**{s: str(paths[s]) for s in SPLITS}, "label": "digit", "id": "id"},
        "modalities": {
            "audio": {
                "kind": "audio",
                "column": "audio",
                "sample_rate": 8000,
                "duration": 1.0,
                "n_mels": 16,
                "n_fft": 256,
                "hop_length": 100,
                "encoder": {"type": "audio_cnn", "dim": 16, "layers": 1},
            },
            "text": {"kind": "text", "column": "text", "encoder": {"type": "text_cnn", "dim": 16}},
            "image": {"kind": "image", "column": "image", "size": 28, "channels": 1},
        },
        "alignment": {
            "pair": ["audio", "text"],
            "dim": 16,
            "templates": ["{}", "the number {}"],
            "relevance": "label",
        },
        "training": {"progress": False, "accelerator": "cpu"},
    }
    data = prepare_data(PlaitConfig.from_dict(raw))
    assert not data.problems
    assert data.labels is not None and set(data.labels.names) == set(DIGIT_WORDS)
    for dataset in (data.train, data.valid, data.test):
        assert dataset is not None and len(dataset) == SUBSET
    sample = data.test[0]
    assert sample["inputs"]["audio"]["features"].shape == (1, 16, 81)  # 8000 // 100 + 1
    assert sample["inputs"]["image"]["pixel_values"].shape == (1, 28, 28)


def test_bad_arguments(tmp_path):
    for bad in ({"subset": 5}, {"subset": True}, {"seed": -1}):
        with pytest.raises(ValueError):
            build_digits(MNIST, FSDD, tmp_path, **bad)
