"""Plait's decoding of the scratch decoder and Hugging Face `generate()` pick the same
tokens when they decode the same model (a tiny random GPT-2 with varied, confident
logits) with the same options: greedy, beams, length penalty, no-repeat n-grams."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from plait.heads.decoding import DecodingOptions, generate

OPTIONS = [
    DecodingOptions(max_length=8),
    DecodingOptions(max_length=8, no_repeat_ngram_size=2),
    DecodingOptions(max_length=8, num_beams=3),
    DecodingOptions(max_length=8, num_beams=3, length_penalty=-1.0),
    DecodingOptions(max_length=8, num_beams=2, length_penalty=3.0, no_repeat_ngram_size=1),
]


@pytest.fixture(scope="module")
def lm():
    import transformers as tf

    torch.manual_seed(0)
    config = tf.GPT2Config(vocab_size=40, n_positions=64, n_embd=32, n_layer=1, n_head=2,
                           initializer_range=0.5, tie_word_embeddings=False,
                           bos_token_id=0, eos_token_id=0)  # fmt: skip
    return tf.GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("eos", [0, 2])
@pytest.mark.parametrize(
    "options",
    OPTIONS,
    ids=lambda o: f"beams{o.num_beams}-lp{o.length_penalty}-nr{o.no_repeat_ngram_size}",
)
def test_same_tokens_as_hugging_face_generate(lm, options: DecodingOptions, eos: int):
    def step(tokens: Tensor, rows: Tensor) -> Tensor:
        with torch.no_grad():
            return lm(input_ids=tokens).logits[:, -1]

    ended = 0
    for start in (3, 17, 22):  # the start token plays the image's role
        (ours,) = generate(step, 1, bos=start, eos=eos, options=options)
        with torch.no_grad():
            out = lm.generate(
                input_ids=torch.tensor([[start]]), attention_mask=torch.ones(1, 1, dtype=torch.long),
                max_new_tokens=options.max_length, num_beams=options.num_beams,
                length_penalty=options.length_penalty, do_sample=False,
                no_repeat_ngram_size=options.no_repeat_ngram_size, eos_token_id=eos,
                pad_token_id=eos,
            )  # fmt: skip
        theirs = out[0, 1:].tolist()
        ended += eos in theirs
        theirs = theirs[: theirs.index(eos)] if eos in theirs else theirs
        assert ours == theirs, f"start {start}"
    if eos == 0:  # the test means something: these captions end before max_length
        assert ended >= 1
