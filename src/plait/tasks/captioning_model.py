"""The captioning model: the source modality's encoder (any Plait image or audio encoder,
scratch or hub) feeding a decoder that writes the caption modality's text.

Two decoders (`captioning.decoder`): `transformer`, a scratch Transformer decoder with
cross-attention to the encoder's sequence (`heads/caption_decoder.py`, decoded by
`heads/decoding.py`), and `hub`, a causal LM fed a learned prefix (`heads/prefix_lm.py`,
decoded by the LM's own `generate()`). Both are trained on the same targets: the caption
tokens then the end token, padding marked -100 (`CaptionTokens.targets`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from plait.config import PlaitConfig
from plait.encoders import build_encoder
from plait.encoders.base import EncoderOutput
from plait.errors import ConfigError
from plait.heads.caption_decoder import TransformerCaptionDecoder
from plait.heads.decoding import DecodingOptions, generate
from plait.heads.prefix_lm import PrefixLMDecoder

IGNORE = -100  # target of a padding position (never scored)
_PUNCTUATION_SPACE = re.compile(r" ([.,:;!?])")  # "shapes : a" -> "shapes: a"


@dataclass(frozen=True)
class CaptionTokens:
    """The caption vocabulary's special ids. Plait's own vocabulary gains a start and an
    end token (two extra rows, after its words); a hub tokenizer uses its own (BOS, or
    CLS; EOS, or SEP) and its special tokens are dropped from the targets."""

    bos: int
    eos: int
    pad: int
    vocab_size: int
    special: frozenset[int]

    @classmethod
    def of(cls, processor: Any) -> CaptionTokens:
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:  # Plait's word vocabulary: <pad> 0, <unk> 1, words
            size = int(processor.vocab_size)
            return cls(bos=size, eos=size + 1, pad=0, vocab_size=size + 2, special=frozenset({0}))
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else None
        eos = eos if eos is not None else tokenizer.sep_token_id
        if eos is None:
            raise ConfigError(
                f"the caption tokenizer ({processor.hub_model}) has no end token (EOS or SEP): "
                "a caption could never end; use a tokenizer that has one"
            )
        bos = next(
            (t for t in (tokenizer.bos_token_id, tokenizer.cls_token_id) if t is not None), eos
        )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        special = frozenset(int(t) for t in tokenizer.all_special_ids)
        return cls(bos=int(bos), eos=int(eos), pad=int(pad), vocab_size=len(tokenizer),
                   special=special)  # fmt: skip

    def targets(self, input_ids: Tensor, attention_mask: Tensor, keep: Tensor) -> Tensor:
        """[B, T] caption ids (+ mask) -> targets [B, L]: the real, non-special tokens of
        each row then `eos`, padded with IGNORE; rows where `keep` [B] is False are all
        IGNORE (no caption or no source)."""
        rows = []
        for ids, mask, use in zip(input_ids.tolist(), attention_mask.tolist(), keep.tolist(),
                                  strict=True):  # fmt: skip
            tokens = [t for t, m in zip(ids, mask, strict=True) if m and t not in self.special]
            rows.append([*tokens, self.eos] if use else [])
        length = max(1, max(len(r) for r in rows))
        out = torch.full((len(rows), length), IGNORE, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out.to(input_ids.device)


class CaptioningModel(nn.Module):
    """Source encoder + caption decoder. `forward` is teacher-forced (targets [B, L] ->
    logits [B, L, V], position i predicting target i); `generate` decodes."""

    def __init__(
        self, source: str, encoder: nn.Module, decoder: nn.Module, tokens: CaptionTokens
    ) -> None:
        super().__init__()
        self.source = source
        self.encoders = nn.ModuleDict({source: encoder})  # saved folders look here for hub files
        self.decoder = decoder
        self.tokens = tokens

    @property
    def kind(self) -> str:
        return "hub" if isinstance(self.decoder, PrefixLMDecoder) else "transformer"

    def encode(self, inputs: Mapping[str, Mapping[str, Tensor]]) -> EncoderOutput:
        output: EncoderOutput = self.encoders[self.source](**inputs[self.source])
        return output

    def forward(self, inputs: Mapping[str, Mapping[str, Tensor]], targets: Tensor) -> Tensor:
        """inputs (the source's tensors) + targets [B, L] (IGNORE = padding) -> [B, L, V]."""
        encoded = self.encode(inputs)
        tokens = targets.clamp(min=0).masked_fill(targets == IGNORE, self.tokens.pad)  # [B, L]
        if isinstance(self.decoder, PrefixLMDecoder):
            return self.decoder(encoded.pooled, tokens, (targets != IGNORE).long())
        start = torch.full_like(tokens[:, :1], self.tokens.bos)  # [B, 1]
        shifted = torch.cat([start, tokens[:, :-1]], 1)  # [B, L]: bos, t1 .. t(L-1)
        logits: Tensor = self.decoder(shifted, encoded.sequence, encoded.mask)
        return logits

    @torch.no_grad()
    def generate(
        self, inputs: Mapping[str, Mapping[str, Tensor]], options: DecodingOptions
    ) -> list[list[int]]:
        """The caption tokens of each row (no start / end tokens)."""
        encoded = self.encode(inputs)
        bos, eos = self.tokens.bos, self.tokens.eos
        if isinstance(self.decoder, PrefixLMDecoder):
            return self._generate_hub(encoded.pooled, options)
        sequence, mask = encoded.sequence, encoded.mask  # [B, T, D], [B, T]
        decoder = self.decoder

        def step(tokens: Tensor, rows: Tensor) -> Tensor:
            rows = rows.to(sequence.device)
            logits = decoder(tokens.to(sequence.device), sequence[rows], mask[rows])
            return logits[:, -1]  # [N, V]

        return generate(step, len(sequence), bos=bos, eos=eos, options=options)

    def _generate_hub(self, pooled: Tensor, options: DecodingOptions) -> list[list[int]]:
        assert isinstance(self.decoder, PrefixLMDecoder)
        eos = self.tokens.eos
        kwargs: dict[str, Any] = {
            "max_new_tokens": options.max_length,
            "num_beams": options.num_beams,
            "length_penalty": options.length_penalty,
            "no_repeat_ngram_size": options.no_repeat_ngram_size,
            "do_sample": options.do_sample,
            "eos_token_id": eos,
            "pad_token_id": self.tokens.pad,
            "bos_token_id": self.tokens.bos,
        }
        if options.do_sample:
            kwargs.update(top_k=options.top_k, top_p=options.top_p,
                          temperature=options.temperature)  # fmt: skip
        else:
            kwargs.update(top_k=None, top_p=None, temperature=None)
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            # the prefix is vectors, not tokens: n-grams are only banned among new tokens
            warnings.filterwarnings("ignore", message=".*no_repeat_ngram_size.*inputs_embeds")
            if options.seed is not None:
                torch.manual_seed(options.seed)
            ids = self.decoder.generate(pooled, **kwargs)  # [B, <= max_length]
        rows = []
        for row in ids.tolist():
            rows.append(row[: row.index(eos)] if eos in row else row)
        return rows


def build_captioning_model(
    config: PlaitConfig, processors: Mapping[str, Any], *, load_weights: bool = True
) -> CaptioningModel:
    """The source encoder and the configured decoder over the caption's vocabulary."""
    assert config.captioning is not None
    settings = config.captioning
    source, caption = config.captioning_pair
    encoder = build_encoder(config.modalities[source], load_weights=load_weights)
    tokens = CaptionTokens.of(processors[caption])
    width = int(getattr(encoder, "output_dim"))  # noqa: B009  (typed as Tensor | Module)
    decoder: nn.Module
    if settings.decoder == "hub":
        assert settings.model is not None
        lm = load_causal_lm(settings.model, load_weights=load_weights)
        rows = int(lm.get_input_embeddings().num_embeddings)
        if tokens.vocab_size > rows:
            raise ConfigError(
                f"the caption tokenizer has {tokens.vocab_size} tokens but {settings.model} "
                f"embeds only {rows}: `modalities.{caption}.encoder.model` must name the LM's "
                "own tokenizer"
            )
        decoder = PrefixLMDecoder(lm, width, settings.prefix_length, settings.freeze_lm)
    else:
        decoder = TransformerCaptionDecoder(
            tokens.vocab_size,
            width,
            dim=settings.dim,
            layers=settings.layers,
            heads=settings.heads,
            dropout=settings.dropout,
            max_positions=max(settings.max_length, _max_length(config, caption)) + 2,
        )
    return CaptioningModel(source, encoder, decoder, tokens)


def load_causal_lm(model: str, *, load_weights: bool = True) -> Any:
    """A Hugging Face causal LM by hub name or local folder; `load_weights=False` builds
    the architecture from its config alone (a saved captioner loads its own weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        if load_weights:
            lm = AutoModelForCausalLM.from_pretrained(model)
        else:
            lm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"`captioning.model: {model}` could not be loaded as a causal LM: {exc}"
        ) from None
    return lm


def caption_text(processor: Any, tokens: CaptionTokens, ids: list[int]) -> str:
    """Generated ids -> the caption: words joined by spaces, no space before punctuation
    (Plait's vocabulary) or the hub tokenizer's own decoding; start, end and padding
    tokens dropped, and so are IGNORE positions (a padded target row: a hub tokenizer
    cannot decode a negative id)."""
    dropped = {*tokens.special, tokens.bos, tokens.eos}
    kept = [i for i in ids if i != IGNORE and i not in dropped]
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None:
        return str(tokenizer.decode(kept, skip_special_tokens=True)).strip()
    return _PUNCTUATION_SPACE.sub(r"\1", " ".join(processor.vocab.decode(kept)))


def _max_length(config: PlaitConfig, caption: str) -> int:
    """Tokens kept per training caption (the text modality's `max_length`)."""
    return int(getattr(config.modalities[caption], "max_length", 0))
