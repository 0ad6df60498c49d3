"""Decoding a token sequence from any next-token model, with the options of Hugging Face
`generate()`: greedy, beam search with a length penalty, sampling with temperature,
top-k and top-p, a maximum length and no repeated n-grams.

The scratch caption decoder has no `generate()` of its own; this module gives it the
same options, applied in the same order as Hugging Face (n-gram ban on the logits, then
temperature, top-k, top-p for sampling; log-softmax before the n-gram ban for beams), so
a user switching decoder kinds keeps the meaning of every option. The model is one
function, `step(tokens [N, t], rows [N]) -> logits [N, V]`: the next-token logits of N
sequences so far (each starting with the start token), `rows` saying which input row
each sequence belongs to (beam search runs several sequences per row).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from plait.errors import PlaitError

StepFn = Callable[[Tensor, Tensor], Tensor]
"""(tokens [N, t] long, rows [N] long) -> next-token logits [N, V]."""


@dataclass(frozen=True)
class DecodingOptions:
    """How captions are decoded (Hugging Face `generate()` names and defaults).

    max_length: generated tokens at most, the end token included.
    num_beams: 1 decodes greedily (or samples); more keeps that many hypotheses.
    length_penalty: beam scores are summed log-probabilities / length ** length_penalty;
        above 0 favours longer captions, below 0 shorter ones.
    do_sample: draw each token from the (filtered) distribution instead of the best one.
    top_k: sample among the k most likely tokens only (0: no limit).
    top_p: sample among the most likely tokens whose probabilities add up to top_p.
    temperature: logits are divided by it before sampling (below 1: safer choices).
    no_repeat_ngram_size: no n-gram of this size appears twice in a caption (0: off).
    seed: makes sampling repeatable (None: torch's global generator).
    """

    max_length: int = 32
    num_beams: int = 1
    length_penalty: float = 1.0
    do_sample: bool = False
    top_k: int = 50
    top_p: float = 1.0
    temperature: float = 1.0
    no_repeat_ngram_size: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.max_length < 1:
            problems.append(f"max_length must be at least 1, got {self.max_length}")
        if self.num_beams < 1:
            problems.append(f"num_beams must be at least 1, got {self.num_beams}")
        if self.top_k < 0:
            problems.append(f"top_k must be 0 (off) or more, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature <= 0:
            problems.append(f"temperature must be above 0, got {self.temperature}")
        if self.no_repeat_ngram_size < 0:
            problems.append(f"no_repeat_ngram_size must be 0 (off) or more, got "
                            f"{self.no_repeat_ngram_size}")  # fmt: skip
        if self.do_sample and self.num_beams > 1:
            problems.append("sampling with beams is not offered: use do_sample or num_beams > 1")
        if problems:
            raise PlaitError("decoding options: " + "; ".join(problems))

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# ------------------------------------------------------------------ logit processors
def ban_repeated_ngrams(logits: Tensor, tokens: Tensor, size: int) -> Tensor:
    """`logits` [N, V] with -inf for every token that would repeat an n-gram of `size`
    already in `tokens` [N, t] (the start token counts, as in Hugging Face)."""
    if size <= 0 or tokens.shape[1] + 1 < size:
        return logits
    logits = logits.clone()
    for i, row in enumerate(tokens.tolist()):
        prefix = tuple(row[len(row) - size + 1 :]) if size > 1 else ()
        banned = {
            row[j + size - 1]
            for j in range(len(row) - size + 1)
            if tuple(row[j : j + size - 1]) == prefix
        }
        if banned:
            logits[i, list(banned)] = -math.inf
    return logits


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the `k` largest logits of each row [N, V] (ties with the k-th kept); -inf
    elsewhere. 0 keeps everything."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]  # [N, 1]
    return logits.masked_fill(logits < kth, -math.inf)


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Keep the most likely tokens of each row [N, V] until their probabilities reach
    `p` (the token that crosses it included, at least one kept); -inf elsewhere."""
    if p >= 1.0:
        return logits
    ordered, order = logits.sort(dim=-1, descending=True)  # [N, V]
    probs = ordered.softmax(-1)
    before = probs.cumsum(-1) - probs  # mass of the strictly more likely tokens
    drop_sorted = before >= p
    drop_sorted[..., 0] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, -math.inf)


def sampling_probs(logits: Tensor, options: DecodingOptions) -> Tensor:
    """The distribution a token is sampled from: logits [N, V] / temperature, then top-k,
    then top-p, then softmax (Hugging Face's order)."""
    logits = logits / options.temperature
    return top_p_filter(top_k_filter(logits, options.top_k), options.top_p).softmax(-1)


# -------------------------------------------------------------------------- decoding
def generate(
    step: StepFn, batch_size: int, *, bos: int, eos: int, options: DecodingOptions
) -> list[list[int]]:
    """The generated tokens of each of `batch_size` rows, start and end tokens removed."""
    if options.num_beams > 1:
        return [_beam_search(step, row, bos, eos, options) for row in range(batch_size)]
    return _greedy_or_sample(step, batch_size, bos, eos, options)


def _greedy_or_sample(
    step: StepFn, batch_size: int, bos: int, eos: int, options: DecodingOptions
) -> list[list[int]]:
    generator = None
    if options.do_sample and options.seed is not None:
        generator = torch.Generator().manual_seed(options.seed)
    tokens = torch.full((batch_size, 1), bos, dtype=torch.long)  # [B, t]
    done = torch.zeros(batch_size, dtype=torch.bool)
    rows = torch.arange(batch_size)
    for _ in range(options.max_length):
        active = (~done).nonzero().flatten()  # [N]
        logits = step(tokens[active], rows[active]).float().cpu()  # [N, V]
        logits = ban_repeated_ngrams(logits, tokens[active], options.no_repeat_ngram_size)
        if options.do_sample:
            probs = sampling_probs(logits, options)  # [N, V]
            chosen = torch.multinomial(probs, 1, generator=generator).flatten()
        else:
            chosen = logits.argmax(-1)  # [N]
        following = torch.full((batch_size,), eos, dtype=torch.long)
        following[active] = chosen
        tokens = torch.cat([tokens, following[:, None]], 1)
        done |= following == eos
        if bool(done.all()):
            break
    return [_until_end(row[1:], eos) for row in tokens.tolist()]


def _beam_search(step: StepFn, row: int, bos: int, eos: int, options: DecodingOptions) -> list[int]:
    """Hugging Face's beam search for one input row: `num_beams` running hypotheses,
    2 x `num_beams` candidates per step, finished ones scored by summed log-probability
    / length ** length_penalty (length: generated tokens, the end token included);
    stops when no running beam can beat the `num_beams` finished ones."""
    beams_n, penalty = options.num_beams, options.length_penalty
    beams = torch.full((1, 1), bos, dtype=torch.long)  # [K, t]
    scores = torch.zeros(1)  # [K] summed log-probabilities
    finished: list[tuple[float, list[int]]] = []
    for length in range(1, options.max_length + 1):
        logits = step(beams, torch.full((len(beams),), row, dtype=torch.long)).float().cpu()
        logp = ban_repeated_ngrams(logits.log_softmax(-1), beams, options.no_repeat_ngram_size)
        total = (scores[:, None] + logp).flatten()  # [K * V]
        vocab = logp.shape[1]
        top = total.topk(min(2 * beams_n, total.numel()))
        kept: list[tuple[int, int, float]] = []
        for score, index in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            if score == -math.inf:
                break
            beam, token = divmod(index, vocab)
            if token == eos:
                finished.append((score / length**penalty, beams[beam, 1:].tolist()))
            else:
                kept.append((beam, token, score))
            if len(kept) == beams_n:
                break
        if not kept:
            break
        index = torch.tensor([b for b, _, _ in kept])
        following = torch.tensor([t for _, t, _ in kept])
        beams = torch.cat([beams[index], following[:, None]], 1)
        scores = torch.tensor([s for _, _, s in kept])
        if len(finished) >= beams_n:
            worst = sorted((s for s, _ in finished), reverse=True)[beams_n - 1]
            if float(scores.max()) / length**penalty <= worst:
                break
    else:  # max_length reached: the running beams count as they are
        finished += [
            (float(s) / options.max_length**penalty, b[1:])
            for s, b in zip(scores.tolist(), beams.tolist(), strict=True)
        ]
    if not finished:
        return []
    return max(finished, key=lambda item: item[0])[1]


def _until_end(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos)] if eos in tokens else tokens
