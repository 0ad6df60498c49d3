"""The AV-MNIST builder on the real MNIST and FSDD files (skipped where they are absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plait.config import PlaitConfig
from plait.data.avmnist import (
    MANIFEST_COLUMNS,
    SPEC_SIZE,
    build_avmnist,
    fix_length,
    read_idx,
    spectrograms,
)
from plait.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("PLAIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
MNIST, FSDD = DATA / "mnist", DATA / "fsdd"

pytestmark = pytest.mark.skipif(
    not (MNIST / "train-images-idx3-ubyte.gz").is_file()
    or not (FSDD / "recordings.tar.xz").is_file(),
    reason=f"the real MNIST / FSDD files are not in {DATA} (set PLAIT_SHARED_DATA)",
)


def _build(folder: Path, **kwargs) -> dict:
    return build_avmnist(MNIST, FSDD, folder, progress=False, **kwargs)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("avmnist") / "subset200"
    return folder, _build(folder, subset=200)


@pytest.fixture(scope="module")
def manifests(small) -> dict[str, pd.DataFrame]:
    folder, _ = small
    return {split: pd.read_csv(folder / f"{split}.csv") for split in ("train", "valid", "test")}


@pytest.fixture(scope="module")
def labels() -> dict[str, np.ndarray]:
    return {
        "train": read_idx(MNIST / "train-labels-idx1-ubyte.gz"),
        "test": read_idx(MNIST / "t10k-labels-idx1-ubyte.gz"),
    }


def test_files_shapes_and_dtypes(small, manifests):
    folder, result = small
    assert result["counts"] == {"train": 200, "valid": 20, "test": 40}
    assert result["seconds"] < 60
    for split, rows in result["counts"].items():
        images = np.load(folder / f"image_{split}.npy")
        assert images.shape == (rows, 28, 28) and images.dtype == np.float32
        frame = manifests[split]
        assert list(frame.columns) == MANIFEST_COLUMNS and len(frame) == rows
        assert frame["image"].tolist() == [f"image_{split}.npy#{i}" for i in range(rows)]
        assert frame["audio"].str.fullmatch(r"audio_spectrograms\.npy#\d+").all()
        assert frame["id"].is_unique
    specs = np.load(folder / "audio_spectrograms.npy", mmap_mode="r")
    assert specs.shape == (3000, SPEC_SIZE, SPEC_SIZE) and specs.dtype == np.float16
    assert np.isfinite(specs[:50]).all()
    assert not any(folder.glob("audio_train.npy")) and not any(folder.glob(".*tmp"))
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["counts"] == result["counts"] and meta["parameters"]["subset"] == 200
    readme = (folder / "README.md").read_text()
    for text in ("CC BY-SA 3.0", "CC BY-SA 4.0", "Jakobovski/free-spoken-digit-dataset", "LeCun"):
        assert text in readme


def test_images_are_centred_pca_reconstructions(small, labels):
    """Test split: k from a direct SVD of the same 10,000 images; rows are projections."""
    folder, result = small
    raw = read_idx(MNIST / "t10k-images-idx3-ubyte.gz").reshape(10000, -1) / 255.0
    centred = raw - raw.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    ratio = singular**2 / np.sum(singular**2)
    k = int(np.searchsorted(np.cumsum(ratio), 0.25, side="right")) + 1
    assert np.cumsum(ratio)[k - 1] > 0.25 >= np.cumsum(ratio)[k - 2]
    assert result["pca_components"]["test"] == k
    images = np.load(folder / "image_test.npy").reshape(40, -1)
    expected = centred[:40] @ vt[:k].T @ vt[:k]  # no mean added back
    assert np.abs(images - expected).max() < 1e-4
    assert abs(float(np.load(folder / "image_train.npy").mean())) < 0.05  # centred


def test_train_pca_component_count(small):
    """Train split (the 60,000 images incl. valid): k from sklearn's PCA."""
    from sklearn.decomposition import PCA

    folder, result = small
    raw = read_idx(MNIST / "train-images-idx3-ubyte.gz").reshape(60000, -1) / 255.0
    pca = PCA(n_components=12, svd_solver="randomized", random_state=0).fit(raw)
    cumulative = np.cumsum(pca.explained_variance_ratio_)
    k = int(np.argmax(cumulative > 0.25)) + 1
    assert result["pca_components"]["train"] == k
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["image"]["train"]["explained_variance"] == pytest.approx(cumulative[k - 1], 1e-4)
    components = pca.components_[:k]
    expected = (raw[:200] - pca.mean_) @ components.T @ components
    images = np.load(folder / "image_train.npy").reshape(200, -1)
    assert np.abs(images - expected).max() < 1e-3


def test_pairing(small, manifests, labels):
    folder, _ = small
    recordings = pd.read_csv(folder / "recordings.csv")
    assert recordings["row"].tolist() == list(range(3000))
    sources = {"train": ("train", 0), "valid": ("train", 55000), "test": ("test", 0)}
    used = {}
    for split, frame in manifests.items():
        part, first = sources[split]
        assert (frame["digit"].to_numpy() == labels[part][first : first + len(frame)]).all()
        rows = frame["audio"].str.split("#").str[1].astype(int).to_numpy()
        matched = recordings.iloc[rows]
        assert (matched["digit"].to_numpy() == frame["digit"].to_numpy()).all()
        assert (matched["recording"].to_numpy() == frame["recording"].to_numpy()).all()
        assert (matched["speaker"].to_numpy() == frame["speaker"].to_numpy()).all()
        pool = range(40, 50) if split == "test" else range(0, 40)
        assert matched["index"].isin(list(pool)).all()
        used[split] = set(frame["recording"])
    assert not (used["train"] | used["valid"]) & used["test"]
    # each image takes the NEXT recording of its digit: consecutive in (speaker, index) order
    train = manifests["train"]
    for digit in range(10):
        pool = recordings[(recordings["digit"] == digit) & (recordings["index"] < 40)]
        order = list(pool.sort_values(["speaker", "index"])["recording"])
        sequence = [order.index(r) for r in train.loc[train["digit"] == digit, "recording"]]
        steps = {(b - a) % len(order) for a, b in zip(sequence, sequence[1:], strict=False)}
        assert steps <= {1}


def test_deterministic_and_seeded(small, tmp_path):
    folder, _ = small
    again = tmp_path / "again"
    _build(again, subset=200)
    for path in sorted(folder.iterdir()):
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name
    other = tmp_path / "seed1"
    _build(other, subset=200, seed=1)
    first, second = pd.read_csv(folder / "train.csv"), pd.read_csv(other / "train.csv")
    assert (first["digit"] == second["digit"]).all()
    assert (first["recording"] != second["recording"]).mean() > 0.5
    assert np.array_equal(np.load(folder / "image_train.npy"), np.load(other / "image_train.npy"))


def test_noise_stores_per_sample_spectrograms(small, tmp_path):
    folder, _ = small
    noisy = tmp_path / "noisy"
    result = _build(noisy, subset=200, noise=0.5)
    assert not (noisy / "audio_spectrograms.npy").exists()
    clean_specs = np.load(folder / "audio_spectrograms.npy", mmap_mode="r")
    clean = pd.read_csv(folder / "train.csv")
    frame = pd.read_csv(noisy / "train.csv")
    assert (frame["recording"] == clean["recording"]).all()  # same pairing
    for split, rows in result["counts"].items():
        specs = np.load(noisy / f"audio_{split}.npy")
        assert specs.shape == (rows, SPEC_SIZE, SPEC_SIZE) and specs.dtype == np.float16
    assert frame["audio"].tolist() == [f"audio_train.npy#{i}" for i in range(200)]
    specs = np.load(noisy / "audio_train.npy")
    clean_row = clean_specs[int(clean["audio"][0].split("#")[1])].astype(np.float32)
    assert np.abs(specs[0].astype(np.float32) - clean_row).mean() > 1.0
    # the same recording paired twice gets different noise
    twice = frame.index[frame["recording"] == frame["recording"].iloc[0]]
    if len(twice) > 1:
        assert not np.array_equal(specs[twice[0]], specs[twice[1]])


def test_spectrogram_of_a_tone():
    rate = 8000
    tone = np.sin(2 * np.pi * 1000 * np.arange(4000) / rate).astype(np.float32)
    spec = spectrograms(fix_length(tone)[None])[0]  # [frequency, time]
    assert spec.shape == (SPEC_SIZE, SPEC_SIZE)
    middle = spec[:, SPEC_SIZE // 2]
    assert abs(int(middle.argmax()) - round(1000 / 4000 * SPEC_SIZE)) <= 2
    assert spec[:, 2].max() < spec[:, SPEC_SIZE // 2].max() - 40  # zero padding: quiet edges


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="subset"):
        _build(tmp_path / "x", subset=5)
    with pytest.raises(ValueError, match="noise"):
        _build(tmp_path / "x", noise=-1.0)
    with pytest.raises(DataError, match="MNIST file not found"):
        build_avmnist(tmp_path, FSDD, tmp_path / "x", progress=False)


@pytest.fixture(scope="module")
def thousand(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("avmnist") / "subset1000"
    _build(folder, subset=1000)
    return folder


def test_subset_rows_do_not_depend_on_the_subset(small, thousand):
    folder, _ = small
    for split, rows in (("train", 200), ("valid", 20), ("test", 40)):
        small_images = np.load(folder / f"image_{split}.npy")
        assert np.array_equal(small_images, np.load(thousand / f"image_{split}.npy")[:rows])
        small_frame = pd.read_csv(folder / f"{split}.csv")
        large_frame = pd.read_csv(thousand / f"{split}.csv").iloc[:rows]
        assert small_frame.equals(large_frame)


def test_concat_recipe_trains(thousand, tmp_path):
    from plait.api import train_run as fit

    overrides = [
        f"data.train={thousand / 'train.csv'}",
        f"data.valid={thousand / 'valid.csv'}",
        f"data.test={thousand / 'test.csv'}",
        f"output_dir={tmp_path / 'runs'}",
        "training.epochs=2",
        "training.batch_size=64",
        "training.lr=0.1",
        "training.threads=1",
        "training.progress=false",
        "training.tensorboard=false",
        "evaluation.report=false",
    ]
    config = PlaitConfig.from_yaml(ROOT / "configs" / "avmnist-concat.yaml", overrides)
    result = fit(config)
    assert result.metrics["accuracy"] > 0.2


def test_benchmark_runs_side_by_side_and_writes_every_run(thousand, tmp_path):
    """`bench/avmnist.py --jobs 2`: two seeds in spawned workers, one JSON with both."""
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "avmnist.py"),
        "--data",
        str(thousand),
        "--recipes",
        "image",
        "--seeds",
        "0,1",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--jobs",
        "2",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert sorted(run["seed"] for run in report["runs"]) == [0, 1]
    (row,) = report["summary"]
    assert row["recipe"] == "image" and row["seeds"] == 2
    assert 0.0 < row["accuracy_mean"] <= 1.0
    assert report["data_meta"]["counts"]["train"] == 1000
