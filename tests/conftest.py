"""Shared fixtures: a tiny generated demo data set and tiny configs that train in seconds."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from plait.datasets.demo import generate_demo

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` on two cores: one thread per worker, and for the processes it starts
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")
    # a worker starts with COLUMNS=80, which would pin Rich's console (plait.cli) to 80
    # columns when it is created; without it, each CliRunner call's COLUMNS applies
    os.environ.pop("COLUMNS", None)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with train.csv (48 rows), test.csv (16 rows), images/ and audio/.

    Shared by every test of the session: treat it as read-only (copy before editing).
    """
    root = tmp_path_factory.mktemp("demo-data")
    generate_demo(root, n_train=48, n_test=16, seed=0)
    return root


def build_tiny_config(data_dir: Path, out_dir: Path, name: str = "tiny", **sections: Any) -> dict:
    """A raw config dict for the demo data that trains in about a second on one CPU core.

    `sections` are merged one level deep, e.g. `training={"epochs": 3}`; a value that is
    not a dict replaces the key. The run's HTML report is off (`metrics.json` is still
    written): its figures take most of a tiny run's time, so the tests that read it ask
    for it with `evaluation={"report": True}`.
    """
    raw: dict[str, Any] = {
        "name": name,
        "output_dir": str(out_dir),
        "data": {
            "train": str(data_dir / "train.csv"),
            "test": str(data_dir / "test.csv"),
            "label": "label",
            "id": "id",
            "split": {"method": "stratified", "valid": 0.25, "test": 0.0, "seed": 0},
        },
        "modalities": {
            "caption": {
                "kind": "text",
                "column": "caption",
                "max_length": 16,
                "encoder": {"type": "text_cnn", "dim": 16},
            },
            "image": {
                "kind": "image",
                "column": "image",
                "size": 32,
                "augment": False,
                "encoder": {"type": "image_cnn", "dim": 16, "layers": 2},
            },
            "audio": {
                "kind": "audio",
                "column": "audio",
                "sample_rate": 16000,
                "duration": 0.5,
                "n_mels": 16,
                "n_fft": 256,
                "hop_length": 160,
                "encoder": {"type": "audio_cnn", "dim": 16, "layers": 1},
            },
        },
        "fusion": {"method": "concat", "dim": 16},
        "head": {"task": "classification", "hidden": 16},
        "training": {
            "epochs": 2,
            "batch_size": 16,
            "lr": 3e-3,
            "progress": False,
            "tensorboard": False,
            "threads": 1,
            "accelerator": "cpu",
            "seed": 0,
        },
        "evaluation": {"report": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **copy.deepcopy(value)}
        else:
            raw[key] = copy.deepcopy(value)
    return raw


@pytest.fixture(scope="session")
def tiny_config(demo_data: Path):
    """tiny_config(out_dir, name="tiny", **sections) -> raw config dict over `demo_data`."""

    def build(out_dir: Path, name: str = "tiny", **sections: Any) -> dict:
        return build_tiny_config(demo_data, Path(out_dir), name, **sections)

    return build


# row number (1-based) -> (column, file written there); None: the file does not exist
HOSTILE_FILES = {
    2: ("image", "gone.png"),
    4: ("image", "noise.png"),
    6: ("image", "half.png"),
    9: ("image", "empty.png"),
    13: ("image", "text.png"),
    14: ("audio", "noise.wav"),
    18: ("audio", "empty.wav"),
    21: ("audio", "gone.wav"),
    25: ("audio", "header.wav"),
}


@pytest.fixture(scope="session")
def hostile_table(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """25 demo rows (test.csv, then 9 of train.csv; paths made absolute) where the nine
    rows of `HOSTILE_FILES` point at a missing, corrupt, truncated or empty image or audio
    file. Ids stay the demo's, so predictions can be joined back. Read-only."""
    import pandas as pd

    out = tmp_path_factory.mktemp("hostile")
    frame = pd.concat(
        [pd.read_csv(demo_data / "test.csv"), pd.read_csv(demo_data / "train.csv").head(9)],
        ignore_index=True,
    )
    for column in ("image", "audio"):
        frame[column] = [str(demo_data / v) if isinstance(v, str) else v for v in frame[column]]
    png = sorted((demo_data / "images").glob("*.png"))[0].read_bytes()
    wav = sorted((demo_data / "audio").glob("*.wav"))[0].read_bytes()
    contents = {
        "noise.png": bytes(range(256)) * 4,
        "half.png": png[: len(png) // 2],
        "empty.png": b"",
        "text.png": b"not an image at all\n",
        "noise.wav": bytes(range(256)) * 8,
        "empty.wav": b"",
        "header.wav": wav[:44],  # a RIFF header and no samples
    }
    for row, (column, name) in HOSTILE_FILES.items():
        if name in contents:
            (out / name).write_bytes(contents[name])
        frame[column] = frame[column].astype(object)
        frame.loc[row - 1, column] = str(out / name)
    table = out / "hostile.csv"
    frame.to_csv(table, index=False)
    return table


@pytest.fixture(scope="session")
def hostile_rows() -> dict[int, tuple[str, str]]:
    """The bad rows of `hostile_table`: row number -> (column, file name)."""
    return dict(HOSTILE_FILES)


def tiny_captioner_config(scenes: Path, out_dir: Path) -> dict:
    """A scratch-decoder captioner (image CNN in, 1-layer Transformer decoder out) over
    `generate_captioned_scenes` tables."""
    return {
        "name": "tiny-captioner",
        "output_dir": str(out_dir),
        "data": {
            "train": str(scenes / "train.csv"),
            "valid": str(scenes / "valid.csv"),
            "test": str(scenes / "test.csv"),
            "id": "id",
        },
        "modalities": {
            "image": {
                "kind": "image",
                "column": "image",
                "size": 32,
                "augment": False,
                "encoder": {"type": "image_cnn", "dim": 16, "layers": 2},
            },
            "caption": {
                "kind": "text",
                "column": "caption",
                "max_length": 24,
                "encoder": {"type": "text_cnn"},
            },
        },
        "captioning": {"dim": 16, "heads": 2, "layers": 1, "max_length": 8},
        "training": {
            "epochs": 1,
            "batch_size": 16,
            "progress": False,
            "tensorboard": False,
            "threads": 1,
            "accelerator": "cpu",
        },
    }


@pytest.fixture(scope="session")
def tiny_captioner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved, untrained tiny captioner (random weights: the export and serve tests check
    plumbing and agreement with PyTorch, not caption quality). Read-only."""
    from plait.config import PlaitConfig
    from plait.data import prepare_data
    from plait.datasets.captioned_scenes import generate_captioned_scenes
    from plait.tasks import task_of

    root = tmp_path_factory.mktemp("tiny-captioner")
    generate_captioned_scenes(root / "scenes", n_train=16, n_valid=4, n_test=6, n_heldout=0,
                              seed=0)  # fmt: skip
    config = PlaitConfig.from_dict(tiny_captioner_config(root / "scenes", root / "runs"))
    torch.manual_seed(0)
    data = prepare_data(config, progress=False)
    task = task_of(config)
    model = task.build(config, data.processors, data.labels)
    predictor = task.predictor_of(model.eval(), config, data.processors, data.labels)
    return predictor.save(root / "model")


# A tiny random-init GPT-2 and a byte-level BPE tokenizer trained offline on a few
# captions, saved with `save_pretrained` (no hub access: real LM weights cannot be fetched
# here, so the tests that use it check the plumbing, not caption quality).
SENTENCES = [
    "a small red circle to the left of a large blue square",
    "a large green triangle above a small yellow cross",
    "there are three shapes: a white square, a purple circle and a red cross",
    "a tone rising from low to high, then a short beep",
]


def save_tiny_gpt2(folder: Path) -> Path:
    """GPT-2 (1 layer, width 32) + its BPE tokenizer in `folder`."""
    import transformers as tf
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 4, vocab_size=300, min_frequency=1,
                            special_tokens=["<|endoftext|>"], show_progress=False)  # fmt: skip
    tokenizer = tf.GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                     eos_token="<|endoftext|>", unk_token="<|endoftext|>")  # fmt: skip
    config = tf.GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=1,
                           n_head=2, initializer_range=0.2, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    tf.set_seed(0)
    tf.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))
