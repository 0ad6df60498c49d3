"""`caption_text` turns generated ids and padded validation targets into text, for both
vocabularies (a padded target row holds IGNORE ids, which a hub tokenizer cannot decode)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from plait.tasks.captioning_model import IGNORE, CaptionTokens, caption_text


def test_hub_tokenizer_drops_ignore_padding(tiny_gpt2: Path) -> None:
    from transformers import AutoTokenizer

    processor = SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(tiny_gpt2))
    tokens = CaptionTokens.of(processor)
    words = processor.tokenizer("a small red circle")["input_ids"]
    target = [*words, tokens.eos, IGNORE, IGNORE]  # a shorter row of a padded batch
    assert caption_text(processor, tokens, target) == "a small red circle"
    assert caption_text(processor, tokens, [tokens.bos, *words]) == "a small red circle"
