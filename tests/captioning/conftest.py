"""A tiny random-init GPT-2 and a byte-level BPE tokenizer trained offline on a few
captions, saved with `save_pretrained` (no hub access: real LM weights cannot be fetched
here, so these tests check the plumbing, not caption quality)."""

from __future__ import annotations

from pathlib import Path

import pytest

SENTENCES = [
    "a small red circle to the left of a large blue square",
    "a large green triangle above a small yellow cross",
    "there are three shapes: a white square, a purple circle and a red cross",
    "a tone rising from low to high, then a short beep",
]


def save_tiny_gpt2(folder: Path) -> Path:
    """GPT-2 (1 layer, width 32) + its BPE tokenizer in `folder`."""
    import transformers as tf
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 4, vocab_size=300, min_frequency=1,
                            special_tokens=["<|endoftext|>"], show_progress=False)  # fmt: skip
    tokenizer = tf.GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                     eos_token="<|endoftext|>", unk_token="<|endoftext|>")  # fmt: skip
    config = tf.GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=1,
                           n_head=2, initializer_range=0.2, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    tf.set_seed(0)
    tf.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(autouse=True)
def no_meteor(monkeypatch: pytest.MonkeyPatch) -> None:
    """METEOR starts a Java process per call (tens of seconds on a busy machine); it is
    tested with the metrics (tests/evaluation), so these tests score without it."""
    monkeypatch.setattr("plait.evaluation.caption_metrics.java_available", lambda: False)
