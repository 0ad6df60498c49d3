"""The AV-MNIST builder on the real MNIST and FSDD files (skipped where they are absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plait.config import PlaitConfig
from plait.datasets.avmnist import (
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


# ------------------------------------------------------------------------------------
# The builder before it reused `plait.data.audio` (decoding, STFT) and library PCA and
# resize: a frozen copy of its computation, kept here only to show that the arrays of a
# rebuild match the ones behind the published AV-MNIST tables (bench/RESULTS.md).


def _old_read_wav(data: bytes) -> np.ndarray:
    import io
    import wave

    with wave.open(io.BytesIO(data)) as handle:
        channels = handle.getnchannels()
        frames = handle.readframes(handle.getnframes())
    samples = np.frombuffer(frames, "<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels).mean(axis=1)  # FSDD is 8 kHz: no resampling


def _old_interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    position = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0, n_in - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    frac = position - low
    matrix = np.zeros((n_out, n_in))
    matrix[np.arange(n_out), low] += 1.0 - frac
    matrix[np.arange(n_out), high] += frac
    return matrix


def _old_spectrograms(clips: np.ndarray) -> np.ndarray:
    from scipy import fft

    padded = np.pad(clips.astype(np.float32), ((0, 0), (128, 128)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, 256, axis=1)[:, ::72]
    window = np.hanning(257)[:-1].astype(np.float32)
    spectrum = fft.rfft(frames * window, axis=-1)  # [B, T, 129]
    db = 10.0 * np.log10(spectrum.real**2 + spectrum.imag**2 + 1e-10)
    db = np.maximum(db, db.max(axis=(1, 2), keepdims=True) - 80.0).transpose(0, 2, 1)
    rows = _old_interpolation_matrix(129, SPEC_SIZE).T.astype(np.float32)  # [129, 112]
    out = db.astype(np.float32).transpose(0, 2, 1).reshape(-1, 129) @ rows
    return out.reshape(len(clips), SPEC_SIZE, SPEC_SIZE).transpose(0, 2, 1)


def _old_pca(images: np.ndarray, keep: float = 0.25) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean [D], basis [D, k], cumulative explained variance): float32 covariance,
    float64 eigh of its leading 64 eigenpairs."""
    from scipy.linalg import eigh

    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = x - mean
    covariance = (centred.T @ centred).astype(np.float64) / (len(x) - 1)
    dim = covariance.shape[0]
    values, vectors = eigh(covariance, subset_by_index=[dim - 64, dim - 1])
    values, vectors = values[::-1].clip(min=0.0), vectors[:, ::-1]
    cumulative = np.cumsum(values) / np.trace(covariance)
    k = int(np.argmax(cumulative > keep)) + 1
    return mean, vectors[:, :k].astype(np.float32), float(cumulative[k - 1])


def _old_images(images: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    return (((x - mean) @ basis) @ basis.T).reshape(images.shape)


def test_rebuilt_spectrograms_match_the_old_builder(small):
    """Every one of the 3,000 clean spectrograms equals the old builder's to within one
    float16 step of the stored value plus 1e-4 dB (float32 differences of ~1e-5 dB between
    scipy's and torch's FFT and between the two bilinear resizes only flip a float16
    rounding now and then), so models see the inputs the published tables were measured
    on: the largest difference is 0.0625 dB against values spread over ~22 dB (std)."""
    import tarfile

    folder, _ = small
    recordings = pd.read_csv(folder / "recordings.csv")
    position = {name: i for i, name in enumerate(recordings["file"])}
    waves: list[np.ndarray] = [np.zeros(0, np.float32)] * len(recordings)
    with tarfile.open(FSDD / "recordings.tar.xz", "r:xz") as archive:
        for member in archive:
            if member.name in position and member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                waves[position[member.name]] = _old_read_wav(handle.read())
    new = np.load(folder / "audio_spectrograms.npy").astype(np.float32)
    old = np.concatenate(
        [
            _old_spectrograms(np.stack([fix_length(w) for w in waves[b : b + 500]]))
            for b in range(0, len(waves), 500)
        ]
    ).astype(np.float16)
    # float32 values differ by < 1e-4 dB; stored as float16 they can round apart by one
    # step (the larger of the two, for a pair on either side of a power of 2)
    step = np.maximum(np.spacing(np.abs(old)), np.spacing(np.abs(new.astype(np.float16))))
    diff = np.abs(new - old.astype(np.float32))
    assert (diff <= step + 1e-4).all(), float(diff.max())
    assert diff.max() <= 0.0625  # values lie in (-128, 128) dB
    assert (diff > 0).mean() < 0.005  # measured: 0.045% of the values
    assert diff.mean() < 1e-4  # dB, against a spread (std) of about 22 dB
    for digit in range(10):  # class-wise statistics unchanged
        rows = (recordings["digit"] == digit).to_numpy()
        old_rows = old[rows].astype(np.float32)
        assert np.abs(new[rows].mean(axis=0) - old_rows.mean(axis=0)).max() < 1e-3
        assert abs(float(new[rows].std()) - float(old_rows.std())) < 1e-3


def test_rebuilt_images_match_the_old_builder(small):
    """The PCA images equal the old builder's to 1e-5 (measured: 6e-7, with pixels of
    spread 0.13): the same component count, explained variance to 1e-6, and the same
    class-wise means. The reconstruction ``V_k V_k^T`` does not depend on the sign of a
    component, so scikit-learn's sign convention cannot change it."""
    folder, result = small
    meta = json.loads((folder / "meta.json").read_text())
    sources = {"train": ("train", 0, 200), "valid": ("train", 55000, 20), "test": ("t10k", 0, 40)}
    fits = {}
    for part in ("train", "t10k"):
        images = read_idx(MNIST / f"{part}-images-idx3-ubyte.gz")
        images = images[:60000] if part == "train" else images
        fits[part] = (images, _old_pca(images))
    for key, part in (("train", "train"), ("test", "t10k")):
        _, (_, basis, explained) = fits[part]
        assert result["pca_components"][key] == basis.shape[1]
        assert meta["image"][key]["explained_variance"] == pytest.approx(explained, abs=1e-6)
    for split, (part, first, rows) in sources.items():
        images, (mean, basis, _) = fits[part]
        old = _old_images(images[first : first + rows], mean, basis)
        new = np.load(folder / f"image_{split}.npy")
        assert np.abs(new - old).max() < 1e-5, split
        labels = read_idx(MNIST / f"{part}-labels-idx1-ubyte.gz")[first : first + rows]
        for digit in np.unique(labels):
            mine = labels == digit
            assert np.abs(new[mine].mean(axis=0) - old[mine].mean(axis=0)).max() < 1e-6
