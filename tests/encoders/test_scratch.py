"""Contract tests for every from-scratch encoder: shapes, gradients, padding invariance."""

from __future__ import annotations

import pytest
import torch

from plait.config import AudioModality, EncoderConfig, ImageModality, TextModality
from plait.encoders import ENCODERS, Encoder, build_encoder

B, T, VOCAB, DIM = 3, 12, 50, 24


def _config(kind: str, **kw) -> EncoderConfig:
    return EncoderConfig(type=kind, dim=DIM, layers=2, heads=2, dropout=0.0, **kw)


def text_inputs(length: int = T) -> dict[str, torch.Tensor]:
    """Three rows: full, half padded, all padding (a missing sample's placeholder)."""
    ids = torch.randint(2, VOCAB, (B, length))
    mask = torch.ones(B, length, dtype=torch.long)
    mask[1, length // 2 :] = 0
    mask[2] = 0
    return {"input_ids": ids * mask, "attention_mask": mask}


def make(kind: str, **kw) -> tuple[Encoder, dict[str, torch.Tensor]]:
    """An encoder of type `kind` and a matching random batch."""
    torch.manual_seed(0)
    config = _config(kind, **kw)
    if kind.startswith("text"):
        modality = TextModality(column="t", encoder=config, max_length=32)
        return build_encoder(modality, vocab_size=VOCAB), text_inputs()
    if kind.startswith("image"):
        modality = ImageModality(column="i", encoder=config, size=32, channels=3)
        return build_encoder(modality), {"pixel_values": torch.randn(B, 3, 32, 32)}
    modality = AudioModality(column="a", encoder=config, n_mels=32)
    return build_encoder(modality), {"features": torch.randn(B, 1, 32, 40)}


SCRATCH = [k for k in ENCODERS if k != "huggingface"]
TEXT_VARIANTS = [(k, p) for k in ("text_gru", "text_transformer") for p in ("mean", "max", "cls")]


@pytest.mark.parametrize("kind", SCRATCH)
def test_contract_shapes_and_gradients(kind: str) -> None:
    encoder, inputs = make(kind)
    out = encoder(**inputs, unused_extra_key=torch.zeros(1))
    steps = out.sequence.shape[1]
    assert encoder.output_dim == DIM
    assert out.sequence.shape == (B, steps, DIM) and steps >= 1
    assert out.pooled.shape == (B, DIM)
    assert out.mask.shape == (B, steps) and out.mask.dtype == torch.bool
    assert torch.isfinite(out.sequence).all() and torch.isfinite(out.pooled).all()
    (out.pooled.square().sum() + out.sequence.square().sum()).backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None, f"{kind}: no gradient for {name}"
    assert any(p.grad.abs().sum() > 0 for p in encoder.parameters())


@pytest.mark.parametrize("kind, pooling", [("text_cnn", "auto"), *TEXT_VARIANTS])
def test_text_padding_never_changes_pooled(kind: str, pooling: str) -> None:
    encoder, inputs = make(kind, pooling=pooling)
    encoder.eval()
    with torch.no_grad():
        reference = encoder(**inputs)
        assert torch.equal(reference.mask, inputs["attention_mask"].bool())
        # garbage token ids under the padding mask
        noisy = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, 7)
        garbage = encoder(input_ids=noisy, attention_mask=inputs["attention_mask"])
        # more padding at the end
        pad = torch.zeros(B, 5, dtype=torch.long)
        longer = encoder(
            input_ids=torch.cat([inputs["input_ids"], pad], 1),
            attention_mask=torch.cat([inputs["attention_mask"], pad], 1),
        )
    for other in (garbage, longer):
        torch.testing.assert_close(other.pooled[:2], reference.pooled[:2], atol=1e-5, rtol=1e-5)
        assert torch.isfinite(other.pooled).all()
    assert torch.isfinite(reference.pooled[2]).all()  # the all-padding row


@pytest.mark.parametrize("kind, pooling", TEXT_VARIANTS)
def test_text_pooling_variants(kind: str, pooling: str) -> None:
    encoder, inputs = make(kind, pooling=pooling)
    out = encoder(**inputs)
    assert out.pooled.shape == (B, DIM) and out.sequence.shape == (B, T, DIM)
    if pooling == "max":
        expected = out.sequence[0].max(0).values
        torch.testing.assert_close(out.pooled[0], expected)


def test_text_without_attention_mask_treats_zero_as_padding() -> None:
    encoder, inputs = make("text_cnn")
    encoder.eval()
    with torch.no_grad():
        out = encoder(input_ids=inputs["input_ids"])
    assert torch.equal(out.mask, inputs["input_ids"] != 0)


def test_odd_dim_gru_projects_to_dim() -> None:
    config = EncoderConfig(type="text_gru", dim=25, layers=1)
    out = build_encoder(TextModality(column="t", encoder=config), vocab_size=VOCAB)(**text_inputs())
    assert out.sequence.shape == (B, T, 25) and out.pooled.shape == (B, 25)


def test_transformer_rejects_text_longer_than_max_length() -> None:
    encoder, _ = make("text_transformer")
    with pytest.raises(ValueError, match="max_length"):
        encoder(**text_inputs(length=40))


def test_lenet_reference_shapes() -> None:
    """AV-MNIST setups: 28x28 digits -> 48 features, 112x112 spectrograms -> 192."""
    image = build_encoder(
        ImageModality(
            column="i", size=28, channels=1, encoder=EncoderConfig(type="image_lenet", dim=48)
        )
    )
    out = image(pixel_values=torch.randn(2, 1, 28, 28))
    assert out.sequence.shape == (2, 1, 48) and out.pooled.shape == (2, 48)
    widths = [m.out_channels for m in image.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [6, 12, 24, 48]
    audio = build_encoder(
        AudioModality(column="a", n_mels=112, encoder=EncoderConfig(type="audio_lenet", dim=192))
    )
    out = audio(features=torch.randn(2, 1, 112, 112))
    assert out.sequence.shape == (2, 1, 192) and audio.output_dim == 192
    short = audio(features=torch.randn(2, 1, 112, 20))  # fewer frames than the downsampling
    assert short.pooled.shape == (2, 192)


@pytest.mark.parametrize("channels, size", [(1, 16), (3, 40)])
def test_image_cnn_channels_and_sizes(channels: int, size: int) -> None:
    config = EncoderConfig(type="image_cnn", dim=16, layers=3)
    encoder = build_encoder(ImageModality(column="i", size=size, channels=channels, encoder=config))
    out = encoder(pixel_values=torch.randn(2, channels, size, size))
    side = -(-size // 8)  # three ceil-mode halvings
    assert out.sequence.shape == (2, side * side, 16)
    torch.testing.assert_close(out.pooled, out.sequence.amax(1))  # `pooling: auto` is max


def test_audio_sequence_runs_over_time() -> None:
    encoder, _ = make("audio_cnn")
    out = encoder(features=torch.randn(2, 1, 32, 64))
    assert out.sequence.shape == (2, 16, DIM)  # two halvings of 64 frames
    transformer, _ = make("audio_transformer", pooling="cls")
    out = transformer(features=torch.randn(2, 1, 32, 50))
    assert out.sequence.shape == (2, 50, DIM) and out.mask.all()


def test_build_encoder_errors() -> None:
    text = TextModality(column="t", encoder=EncoderConfig(type="text_cnn"))
    with pytest.raises(ValueError, match="vocab_size"):
        build_encoder(text)
    bogus = TextModality.model_construct(
        kind="text", column="t", max_length=8, encoder=EncoderConfig.model_construct(type="nope")
    )
    with pytest.raises(ValueError, match="text_cnn"):
        build_encoder(bogus, vocab_size=VOCAB)
    wrong = TextModality.model_construct(
        kind="text", column="t", max_length=8, encoder=EncoderConfig(type="image_cnn")
    )
    with pytest.raises(ValueError, match="cannot encode text"):
        build_encoder(wrong, vocab_size=VOCAB)
