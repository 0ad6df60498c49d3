"""Text: cleaning, Plait's own word vocabulary for scratch encoders, or a hub tokenizer.

Scratch encoders get ids from a `Vocabulary` built on the training split only (so nothing
about valid/test leaks into the model). Pretrained encoders use their own tokenizer, which
is saved beside the model so prediction needs no hub access.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from plait.config import TextModality
from plait.data.processor_base import Processor, is_blank

PAD, UNK = "<pad>", "<unk>"
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]")  # words (with inner apostrophes) or one symbol


def clean_text(s: str, lowercase: bool = True, strip_html: bool = False) -> str:
    """Normalise whitespace, optionally drop HTML tags/entities and lowercase."""
    if strip_html:
        s = html.unescape(_TAG.sub(" ", s))
    s = _SPACE.sub(" ", s).strip()
    return s.lower() if lowercase else s


def tokenize(s: str) -> list[str]:
    """The scratch tokeniser: words and single punctuation marks."""
    return _WORD.findall(s)


class Vocabulary:
    """Word -> id. Id 0 is `<pad>`, 1 is `<unk>`; then words by falling frequency."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.itos: list[str] = [PAD, UNK, *words]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}

    pad_id = 0
    unk_id = 1

    @classmethod
    def build(cls, texts: Iterable[str], vocab_size: int, min_freq: int = 1) -> Vocabulary:
        """Keep the `vocab_size` most frequent words seen at least `min_freq` times.

        Ties break alphabetically so the same texts always give the same ids.
        """
        counts = Counter(tok for text in texts for tok in tokenize(text))
        ranked = sorted(
            (w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w)
        )
        return cls(ranked[:vocab_size])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(tok, self.unk_id) for tok in tokenize(text)]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] if 0 <= i < len(self.itos) else UNK for i in ids]

    def to_dict(self) -> dict[str, Any]:
        return {"itos": self.itos}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        itos = list(data["itos"])
        if itos[:2] != [PAD, UNK]:
            raise ValueError("a saved vocabulary must start with <pad>, <unk>")
        return cls(itos[2:])


class TextProcessor(Processor):
    """Text cell -> {"input_ids": [T] long, "attention_mask": [T] long} (+ hub extras).

    For a hub tokenizer only whitespace/HTML are cleaned: lowercasing is the tokenizer's
    own business (a cased model must see the case).
    """

    kind = "text"

    def __init__(self, config: TextModality, hub_model: str | None = None) -> None:
        super().__init__(config, hub_model)
        self.vocab: Vocabulary | None = None
        self.tokenizer: Any = None
        if hub_model:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(hub_model)

    # ----------------------------------------------------------------------- fitting
    def fit(self, values: Any) -> None:
        if self.tokenizer is not None:
            return
        texts = (self._clean(v) for v in values if not self.is_missing(v))
        self.vocab = Vocabulary.build(texts, self.config.vocab_size, self.config.min_freq)

    @property
    def vocab_size(self) -> int:
        """Embedding rows a scratch encoder needs (tokenizer length for a hub model)."""
        if self.tokenizer is not None:
            return len(self.tokenizer)
        if self.vocab is None:
            raise RuntimeError("TextProcessor.fit(train texts) must run before vocab_size is known")
        return len(self.vocab)

    @property
    def pad_token_id(self) -> int:
        if self.tokenizer is not None:
            return int(self.tokenizer.pad_token_id or 0)
        return Vocabulary.pad_id

    # --------------------------------------------------------------------- per sample
    def _clean(self, value: Any) -> str:
        lower = self.config.lowercase and self.tokenizer is None
        return clean_text(str(value), lowercase=lower, strip_html=self.config.strip_html)

    def is_missing(self, value: Any) -> bool:
        return is_blank(value) or not self._clean(value)

    def load(self, value: Any, base_dir: Path) -> str:
        return self._clean(value)

    def transform(self, raw: str, train: bool, generator: torch.Generator) -> dict[str, Tensor]:
        if self.tokenizer is not None:
            encoded = self.tokenizer(raw, truncation=True, max_length=self.config.max_length)
            return {k: torch.tensor(v, dtype=torch.long) for k, v in encoded.items()}
        if self.vocab is None:
            raise RuntimeError("TextProcessor.fit(train texts) must run before transform")
        ids = self.vocab.encode(raw)[: self.config.max_length] or [Vocabulary.unk_id]
        input_ids = torch.tensor(ids, dtype=torch.long)  # [T]
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}

    def placeholder(self) -> dict[str, Tensor]:
        """A one-token pad sequence, attended (mask 1): a fully masked row turns softmax
        attention into NaN in some encoders, and `presence` already says it is missing."""
        if self.tokenizer is not None:
            encoded = self.tokenizer("", truncation=True, max_length=self.config.max_length)
            return {k: torch.tensor(v, dtype=torch.long) for k, v in encoded.items()}
        return {
            "input_ids": torch.tensor([Vocabulary.pad_id], dtype=torch.long),
            "attention_mask": torch.ones(1, dtype=torch.long),
        }

    def pad_value(self, key: str) -> float:
        return float(self.pad_token_id) if key == "input_ids" else 0.0

    # ---------------------------------------------------------------- save / restore
    def state_dict(self) -> dict[str, Any]:
        return {"vocab": self.vocab.to_dict()} if self.vocab is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "vocab" in state:
            self.vocab = Vocabulary.from_dict(state["vocab"])

    def _hub_object(self) -> Any:
        return self.tokenizer
