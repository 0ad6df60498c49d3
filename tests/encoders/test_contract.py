"""The encoder contract, run over every row of ENCODERS (and every kind a row encodes).

`huggingface` is run once per kind (text, image, audio) on tiny random-init checkpoints
saved with their preprocessors (tests/encoders/conftest.py). Inputs are made by Plait's own
processors, including each processor's placeholder for a missing sample, so the check is
the one training meets: shapes, mask, backward, missing-sample placeholder, and a
state_dict round trip through safetensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from plait.config import ENCODER_KINDS, AudioModality, ImageModality, TextModality
from plait.data.processor import Processor, build_processor
from plait.encoders import ENCODERS, HF_ENCODERS, Encoder, EncoderOutput, HFEncoder, build_encoder

ROWS = [(name, kind) for name in ENCODERS for kind in ENCODER_KINDS[name]]
IDS = [name if name != "huggingface" else f"huggingface-{kind}" for name, kind in ROWS]
TEXTS = ["the cat sat on the mat with a red hat", "a dog"]
RATE, SECONDS = 16000, 0.5
# wav2vec2's SpecAugment embedding is only read when a mask is drawn (as in test_hub.py)
UNUSED_PARAMETERS = {"model.masked_spec_embed"}


def _modality(name: str, kind: str, hub: dict[str, str]) -> Any:
    if name == "huggingface":
        encoder: dict[str, Any] = {"type": name, "model": hub[kind]}
    else:
        encoder = {"type": name, "dim": 16, "layers": 1, "heads": 2, "dropout": 0.0}
    if kind == "text":
        return TextModality(column="t", encoder=encoder, max_length=16)
    if kind == "image":
        return ImageModality(column="i", encoder=encoder, size=32, augment=False)
    return AudioModality(column="a", encoder=encoder, sample_rate=RATE, duration=SECONDS, n_mels=32)


def _raw_samples(kind: str) -> list[Any]:
    """Two real samples of different length/size, as `Processor.load` returns them."""
    rng = np.random.default_rng(0)
    if kind == "text":
        return list(TEXTS)
    if kind == "image":
        return [Image.fromarray(rng.integers(0, 256, (h, h, 3), dtype=np.uint8)) for h in (40, 24)]
    return [rng.standard_normal(int(RATE * s)).astype(np.float32) * 0.1 for s in (SECONDS, 0.2)]


def build(name: str, kind: str, hub: dict[str, str], seed: int = 0, pretrained: bool = True):
    """(encoder, processor) for one row; `pretrained=False` gives a random-init hub model."""
    modality = _modality(name, kind, hub)
    processor = build_processor(modality)
    processor.fit(TEXTS if kind == "text" else [])
    vocab = processor.vocab_size if kind == "text" else None  # type: ignore[attr-defined]
    torch.manual_seed(seed)
    encoder = build_encoder(modality, vocab_size=vocab, load_weights=pretrained)
    return encoder, processor


def batch(
    processor: Processor, placeholders: int = 1, real: bool = True
) -> dict[str, torch.Tensor]:
    """Real samples first, then `placeholders` missing-sample placeholders, collated."""
    gen = torch.Generator().manual_seed(0)
    kind = processor.config.kind
    items = [processor.transform(s, False, gen) for s in _raw_samples(kind)] if real else []
    items += [processor.placeholder() for _ in range(placeholders)]
    return processor.collate(items)


def assert_contract_shapes(encoder: Encoder, out: EncoderOutput, rows: int) -> None:
    steps = out.sequence.shape[1]
    assert steps >= 1
    assert out.sequence.shape == (rows, steps, encoder.output_dim)
    assert out.pooled.shape == (rows, encoder.output_dim)
    assert out.mask.shape == (rows, steps) and out.mask.dtype == torch.bool
    assert out.mask.any(1).all(), "every row, placeholders included, has a valid position"
    assert torch.isfinite(out.sequence).all() and torch.isfinite(out.pooled).all()


@pytest.fixture(scope="module")
def hub(tiny_hub: dict[str, str]) -> dict[str, str]:
    return tiny_hub


def test_every_config_name_has_code_and_every_row_a_name():
    assert set(ENCODERS) == set(ENCODER_KINDS)
    assert set(HF_ENCODERS) == set(ENCODER_KINDS["huggingface"])
    assert len(ROWS) == len(ENCODERS) - 1 + len(HF_ENCODERS)


@pytest.mark.parametrize(("name", "kind"), ROWS, ids=IDS)
def test_shapes_mask_and_backward(name: str, kind: str, hub: dict[str, str]):
    encoder, processor = build(name, kind, hub)
    inputs = batch(processor)
    out = encoder.train()(**inputs)
    assert_contract_shapes(encoder, out, rows=3)
    if name == "huggingface":
        assert isinstance(encoder, HF_ENCODERS[kind])
    else:
        assert type(encoder) is ENCODERS[name]
    if kind == "text":  # one position per token, valid exactly where the tokenizer said
        assert torch.equal(out.mask, inputs["attention_mask"].bool())
    valid = out.mask.unsqueeze(-1)
    (out.pooled.square().sum() + (out.sequence * valid).square().sum()).backward()
    grads = {n: p.grad for n, p in encoder.named_parameters() if p.requires_grad}
    assert {n for n, g in grads.items() if g is None} <= UNUSED_PARAMETERS
    assert all(torch.isfinite(g).all() for g in grads.values() if g is not None)
    assert any(g.abs().sum() > 0 for g in grads.values() if g is not None)


@pytest.mark.parametrize(("name", "kind"), ROWS, ids=IDS)
def test_masked_positions_change_nothing(name: str, kind: str, hub: dict[str, str]):
    """A real row's output depends neither on the other rows nor on padding."""
    encoder, processor = build(name, kind, hub)
    in_batch, alone, mixed = _in_batch_and_alone(encoder, processor, kind)
    torch.testing.assert_close(alone, in_batch, atol=1e-5, rtol=1e-4)
    if kind == "text":  # garbage token ids under the padding mask
        noisy = mixed["input_ids"].masked_fill(mixed["attention_mask"] == 0, 7)
        with torch.no_grad():
            garbage = encoder(**{**mixed, "input_ids": noisy}).pooled[1]
        torch.testing.assert_close(garbage, in_batch, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("name", "kind"), ROWS, ids=IDS)
def test_missing_sample_placeholders(name: str, kind: str, hub: dict[str, str]):
    """A batch of nothing but placeholders (every sample missing) stays finite, forward
    and backward: the fusion ignores these rows, but NaN would still poison the step."""
    encoder, processor = build(name, kind, hub)
    out = encoder.train()(**batch(processor, placeholders=2, real=False))
    assert_contract_shapes(encoder, out, rows=2)
    out.pooled.sum().backward()
    for param_name, param in encoder.named_parameters():
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), f"{name}/{kind}: NaN grad in {param_name}"


@pytest.mark.parametrize(("name", "kind"), ROWS, ids=IDS)
def test_state_dict_round_trip(name: str, kind: str, hub: dict[str, str], tmp_path):
    source, processor = build(name, kind, hub, seed=0)
    target, _ = build(name, kind, hub, seed=1, pretrained=False)
    if isinstance(target, HFEncoder):
        assert target.model is not None
    inputs = batch(processor)
    source.eval(), target.eval()
    with torch.no_grad():
        assert not torch.allclose(target(**inputs).pooled, source(**inputs).pooled)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, tmp_path / "encoder.safetensors")
    target.load_state_dict(load_file(tmp_path / "encoder.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(target(**inputs).pooled, source(**inputs).pooled)
        torch.testing.assert_close(target(**inputs).sequence, source(**inputs).sequence)


def _in_batch_and_alone(encoder: Encoder, processor: Processor, kind: str):
    """Pooled vector of the second (shorter/smaller) real sample: in a padded batch, alone."""
    encoder.eval()
    mixed = batch(processor, placeholders=1)
    short = _raw_samples(kind)[1]
    alone = processor.collate([processor.transform(short, False, torch.Generator())])
    with torch.no_grad():
        return encoder(**mixed).pooled[1], encoder(**alone).pooled[0], mixed


def test_group_norm_wav2vec2_clip_encodes_the_same_in_any_batch(save_tiny_hub, tmp_path):
    hub = save_tiny_hub(tmp_path, norm="group")
    encoder, processor = build("huggingface", "audio", hub)
    in_batch, alone, _ = _in_batch_and_alone(encoder, processor, "audio")
    torch.testing.assert_close(alone, in_batch, atol=1e-5, rtol=1e-4)
