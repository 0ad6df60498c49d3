"""Each decoding option on a toy next-token model whose probabilities are written by hand
(so the right caption is known), and the logit processors against Hugging Face's own."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor
from transformers.generation.logits_process import (
    NoRepeatNGramLogitsProcessor,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from plait.errors import PlaitError
from plait.heads.decoding import (
    DecodingOptions,
    ban_repeated_ngrams,
    generate,
    sampling_probs,
    top_k_filter,
    top_p_filter,
)

BOS, EOS, V = 4, 5, 6
TINY = 1e-6


def markov(table: dict[int, dict[int, float]]):
    """A toy model: the next token depends on the last one only, with the probabilities
    of `table` (last token -> {next token: probability}; the rest shares TINY)."""
    logp = torch.full((V, V), math.log(TINY))
    for last, following in table.items():
        for token, p in following.items():
            logp[last, token] = math.log(p)

    def step(tokens: Tensor, rows: Tensor) -> Tensor:
        return logp[tokens[:, -1]]  # [N, V]

    return step


# greedy takes 0 (0.5) then 2 (0.35) then ends: p = 0.175 over 3 tokens;
# the best caption is [1] (0.4 * 0.9 = 0.36 over 2 tokens)
GREEDY_TRAP = markov(
    {
        BOS: {0: 0.5, 1: 0.4, EOS: 0.1},
        0: {2: 0.35, 3: 0.35, EOS: 0.3},
        1: {EOS: 0.9, 2: 0.1},
        2: {EOS: 0.98},
        3: {EOS: 0.98},
    }
)


def test_greedy_takes_the_most_likely_token_each_step():
    out = generate(GREEDY_TRAP, 2, bos=BOS, eos=EOS, options=DecodingOptions())
    assert out == [[0, 2], [0, 2]]


def test_beam_search_finds_the_more_likely_caption_greedy_misses():
    options = DecodingOptions(num_beams=2)
    assert generate(GREEDY_TRAP, 1, bos=BOS, eos=EOS, options=options) == [[1]]


def test_length_penalty_trades_likelihood_for_length():
    # scores: [1] log(0.36) / 2**lp, [0, 2] log(0.1715) / 3**lp; lp = 3 favours the longer
    assert math.log(0.1715) / 27 > math.log(0.36) / 8
    options = DecodingOptions(num_beams=2, length_penalty=3.0)
    assert generate(GREEDY_TRAP, 1, bos=BOS, eos=EOS, options=options) == [[0, 2]]


def test_max_length_cuts_a_caption_that_never_ends():
    loop = markov({BOS: {0: 0.9}, 0: {0: 0.9}})
    for options in (DecodingOptions(max_length=3), DecodingOptions(max_length=3, num_beams=2)):
        assert generate(loop, 1, bos=BOS, eos=EOS, options=options) == [[0, 0, 0]]


def test_no_repeat_ngram_size_bans_a_second_occurrence():
    model = markov({BOS: {0: 0.6}, 0: {0: 0.5, 1: 0.3, EOS: 0.1}, 1: {0: 0.6, EOS: 0.3}})
    plain = DecodingOptions(max_length=5)
    assert generate(model, 1, bos=BOS, eos=EOS, options=plain) == [[0, 0, 0, 0, 0]]
    # bigrams: (0, 0) once, then 1; after 1 -> 0 both (0, 0) and (0, 1) are taken: end
    bigrams = DecodingOptions(max_length=5, no_repeat_ngram_size=2)
    assert generate(model, 1, bos=BOS, eos=EOS, options=bigrams) == [[0, 0, 1, 0]]
    # no token twice: 0, then 1, then the end
    unigrams = DecodingOptions(max_length=5, no_repeat_ngram_size=1)
    assert generate(model, 1, bos=BOS, eos=EOS, options=unigrams) == [[0, 1]]


def test_sampling_distribution_applies_temperature_then_top_k_then_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.allclose(sampling_probs(logits, DecodingOptions(top_k=0)), logits.exp())
    top2 = sampling_probs(logits, DecodingOptions(top_k=2))
    assert torch.allclose(top2, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    # top-p 0.8: 0.5 + 0.3 reaches it, the rest is cut
    nucleus = sampling_probs(logits, DecodingOptions(top_k=0, top_p=0.8))
    assert torch.allclose(nucleus, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    nucleus = sampling_probs(logits, DecodingOptions(top_k=0, top_p=0.81))
    assert torch.allclose(nucleus, torch.tensor([[0.5, 0.3, 0.15, 0.0]]) / 0.95)
    hot = sampling_probs(logits, DecodingOptions(top_k=0, temperature=2.0))
    assert torch.allclose(hot, logits.exp().sqrt() / logits.exp().sqrt().sum())


def test_sampling_draws_from_the_filtered_distribution_and_a_seed_repeats_it():
    model = markov({BOS: {0: 0.4, 1: 0.35, 2: 0.25 - TINY * 3}, 0: {EOS: 1}, 1: {EOS: 1},
                    2: {EOS: 1}})  # fmt: skip
    drawn = generate(model, 200, bos=BOS, eos=EOS,
                     options=DecodingOptions(do_sample=True, top_k=2, seed=1))  # fmt: skip
    firsts = [row[0] for row in drawn]
    assert set(firsts) == {0, 1}  # never 2: outside the top 2
    assert 0.45 < firsts.count(0) / len(firsts) < 0.70  # 0.4 / 0.75 = 0.53
    again = generate(model, 200, bos=BOS, eos=EOS,
                     options=DecodingOptions(do_sample=True, top_k=2, seed=1))  # fmt: skip
    assert again == drawn
    other = generate(model, 200, bos=BOS, eos=EOS,
                     options=DecodingOptions(do_sample=True, top_k=2, seed=2))  # fmt: skip
    assert other != drawn
    sure = generate(model, 5, bos=BOS, eos=EOS, options=DecodingOptions(do_sample=True, top_k=1))
    assert sure == [[0]] * 5  # top-k 1 is greedy


@pytest.mark.parametrize("size", [1, 2, 3])
def test_ngram_ban_agrees_with_hugging_face(size: int):
    generator = torch.Generator().manual_seed(size)
    tokens = torch.randint(0, 4, (6, 7), generator=generator)
    logits = torch.randn(6, 4, generator=generator)
    expected = NoRepeatNGramLogitsProcessor(size)(tokens, logits.clone())
    assert torch.equal(ban_repeated_ngrams(logits, tokens, size), expected)


@pytest.mark.parametrize("k, p", [(1, 0.3), (3, 0.5), (5, 0.9), (9, 0.99)])
def test_top_k_and_top_p_agree_with_hugging_face(k: int, p: float):
    generator = torch.Generator().manual_seed(k)
    logits = torch.randn(5, 10, generator=generator)
    tokens = torch.zeros(5, 1, dtype=torch.long)
    assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(k)(tokens, logits.clone()))
    assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(p)(tokens, logits.clone()))


def test_bad_options_are_refused_with_what_is_wrong():
    with pytest.raises(PlaitError, match="top_p"):
        DecodingOptions(top_p=0.0)
    with pytest.raises(PlaitError, match="temperature"):
        DecodingOptions(temperature=0.0)
    with pytest.raises(PlaitError, match="sampling with beams"):
        DecodingOptions(do_sample=True, num_beams=3)
