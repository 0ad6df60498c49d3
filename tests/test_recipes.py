"""Every recipe in configs/ is a valid Plait config."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.config import PlaitConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_recipes():
    assert CONFIGS, "configs/ holds no *.yaml recipes"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_recipe_validates(path):
    config = PlaitConfig.from_yaml(path)
    assert config.name == path.stem  # a run folder named like its recipe
    for key in ("train", "valid", "test"):
        value = getattr(config.data, key)
        assert value is None or Path(value).is_absolute()


AVMNIST = [p for p in CONFIGS if p.name.startswith("avmnist-")]


@pytest.mark.parametrize("path", AVMNIST, ids=[p.name for p in AVMNIST])
def test_avmnist_recipes_share_the_reference_setup(path):
    config = PlaitConfig.from_yaml(path)
    root = path.parents[1]
    assert Path(config.data.train) == root / "avmnist" / "train.csv"
    assert Path(config.output_dir) == root / "runs"
    assert config.data.label == "digit"
    assert config.head.hidden == 100
    assert config.training.batch_size == 128
    # SGD everywhere but low_rank (its product of factors needs AdamW to learn)
    optimizer = "adamw" if path.stem == "avmnist-low_rank" else "sgd"
    assert config.training.optimizer == optimizer
    image, audio = config.modalities.get("image"), config.modalities.get("audio")
    assert image or audio
    if image:
        assert (image.encoder.type, image.encoder.dim, image.size) == ("image_lenet", 48, 28)
        assert image.channels == 1 and not image.augment and image.mean is None
    if audio:
        assert (audio.encoder.type, audio.encoder.dim, audio.n_mels) == ("audio_lenet", 192, 112)
        # a missing-audio placeholder has the precomputed spectrograms' 112 frames
        assert int(audio.duration * audio.sample_rate) // audio.hop_length + 1 == 112
    method = path.stem.removeprefix("avmnist-")
    if image and audio:
        assert config.fusion.method == method
