"""Scratch CNNs size themselves from the input by default: `dim` / `layers` left out or
`auto` are resolved while the config is read, so a saved config holds the numbers, and a
config with explicit numbers keeps its meaning. An `image_cnn` stops at a 4x4 map and
max-pools it (its `pooling: auto` is written as `max`); old configs that said `auto`
meant the mean, and keep it."""

from __future__ import annotations

import logging

import pytest
import torch
import yaml

from plait.config import (
    AudioModality,
    EncoderConfig,
    ImageModality,
    PlaitConfig,
    TextModality,
    auto_cnn_size,
)
from plait.encoders import build_encoder
from plait.encoders.image import ImageCNNEncoder


@pytest.mark.parametrize(
    ("size", "layers", "dim", "side"),
    [(28, 3, 128, 4), (32, 3, 128, 4), (64, 4, 192, 4), (224, 6, 384, 4)],
)
def test_default_image_cnn_follows_the_image_size(size, layers, dim, side, caplog) -> None:
    modality = ImageModality(column="picture", size=size)
    assert (modality.encoder.layers, modality.encoder.dim) == (layers, dim)
    assert modality.encoder.pooling == "max"
    with caplog.at_level(logging.INFO, logger="plait"):
        encoder = build_encoder(modality)
    out = encoder.eval()(pixel_values=torch.zeros(2, 3, size, size))
    assert out.pooled.shape == (2, dim) and out.sequence.shape[1] == side * side
    assert f"map {size}x{size} -> {side}x{side}, max of its positions" in caplog.text
    assert f"picture (image_cnn, dim {dim}): {layers} conv blocks, widths 3-" in caplog.text


def test_image_cnn_pools_with_max_unless_told_mean() -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 3, 16, 16)
    pooled = {}
    for pooling in ("auto", "max", "mean"):
        encoder = {"type": "image_cnn", "dim": 8, "layers": 1, "pooling": pooling}
        modality = ImageModality(column="x", size=16, encoder=encoder)
        assert modality.encoder.pooling == ("mean" if pooling == "mean" else "max")
        torch.manual_seed(1)
        out = build_encoder(modality).eval()(pixel_values=features)
        pooled[pooling] = out.pooled
        expected = out.sequence.mean(1) if pooling == "mean" else out.sequence.amax(1)
        assert torch.allclose(out.pooled, expected)
    assert torch.equal(pooled["auto"], pooled["max"])
    assert not torch.allclose(pooled["max"], pooled["mean"])
    # built straight from an encoder config (no modality resolves it), `auto` is max too
    torch.manual_seed(1)
    direct = ImageCNNEncoder(EncoderConfig(type="image_cnn", dim=8, layers=1), 3, 16)
    assert torch.equal(direct.eval()(pixel_values=features).pooled, pooled["max"])


def test_an_old_config_that_said_auto_pooling_keeps_the_mean(tmp_path) -> None:
    def raw(version: int | None, pooling: str | None) -> dict:
        encoder = {"type": "image_cnn", "dim": 8, "layers": 1}
        if pooling is not None:
            encoder["pooling"] = pooling
        config = {
            "data": {"train": str(tmp_path / "t.csv"), "label": "y"},
            "modalities": {
                "image": {"kind": "image", "column": "x", "size": 8, "encoder": encoder}
            },
        }
        return config if version is None else {**config, "config_version": version}

    def pooling(config: PlaitConfig) -> str:
        return config.modalities["image"].encoder.pooling

    assert pooling(PlaitConfig.from_dict(raw(None, "auto"))) == "mean"  # saved before versions
    assert pooling(PlaitConfig.from_dict(raw(1, "auto"))) == "mean"
    assert pooling(PlaitConfig.from_dict(raw(2, "auto"))) == "max"
    assert pooling(PlaitConfig.from_dict(raw(None, None))) == "max"  # hand-written: the default
    assert pooling(PlaitConfig.from_dict(raw(1, "max"))) == "max"
    saved = yaml.safe_load(PlaitConfig.from_dict(raw(None, None)).to_yaml())
    assert saved["modalities"]["image"]["encoder"]["pooling"] == "max"


def test_auto_in_yaml_reads_as_left_out_and_explicit_numbers_stay() -> None:
    auto = ImageModality(column="x", size=28, encoder={"type": "image_cnn", "dim": "auto"})
    assert (auto.encoder.dim, auto.encoder.layers) == (128, 3)
    half = ImageModality(column="x", size=28, encoder={"type": "image_cnn", "layers": 4})
    assert (half.encoder.dim, half.encoder.layers) == (128, 4)
    old = ImageModality(column="x", size=28, encoder={"type": "image_cnn", "dim": 128, "layers": 2})
    assert (old.encoder.dim, old.encoder.layers) == (128, 2)
    given = ImageModality(column="x", size=224, encoder=EncoderConfig(type="image_cnn", dim=64))
    assert (given.encoder.dim, given.encoder.layers) == (64, 6)
    unset = ImageModality(column="x", size=224, encoder=EncoderConfig(type="image_cnn"))
    assert (unset.encoder.dim, unset.encoder.layers) == (384, 6)


def test_audio_cnn_follows_the_smaller_side_of_the_log_mel_map() -> None:
    default = AudioModality(column="clip")  # 64 mel bins x 201 frames
    assert (default.encoder.layers, default.encoder.dim) == (5, 256)
    short = AudioModality(column="clip", duration=0.2)  # 64 x 21 frames
    assert (short.encoder.layers, short.encoder.dim) == (4, 192)
    assert (short.encoder.layers, short.encoder.dim) == tuple(auto_cnn_size(21).values())


def test_other_encoders_keep_their_fixed_defaults() -> None:
    assert (TextModality(column="t").encoder.dim, TextModality(column="t").encoder.layers) == (
        128,
        2,
    )
    lenet = ImageModality(column="x", size=28, encoder={"type": "image_lenet", "dim": "auto"})
    assert lenet.encoder.dim == 128
    transformer = AudioModality(column="a", encoder={"type": "audio_transformer"})
    assert (transformer.encoder.dim, transformer.encoder.layers) == (128, 2)


def test_a_saved_config_holds_numbers_never_auto(tmp_path) -> None:
    raw = {
        "name": "auto",
        "data": {"train": str(tmp_path / "train.csv"), "label": "label"},
        "modalities": {
            "image": {
                "kind": "image",
                "column": "image",
                "size": 28,
                "encoder": {"type": "image_cnn", "dim": "auto", "layers": "auto"},
            },
            "audio": {"kind": "audio", "column": "audio"},
        },
        "head": {"task": "classification"},
    }
    config = PlaitConfig.from_dict(raw)
    saved = yaml.safe_load(config.to_yaml())
    image, audio = saved["modalities"]["image"]["encoder"], saved["modalities"]["audio"]["encoder"]
    assert (image["dim"], image["layers"], audio["dim"], audio["layers"]) == (128, 3, 256, 5)
    assert (image["pooling"], audio["pooling"]) == ("max", "auto")
    again = PlaitConfig.from_dict(saved)
    assert again.modalities["image"].encoder == config.modalities["image"].encoder
