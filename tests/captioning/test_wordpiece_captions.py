"""The scratch caption decoder over a BERT-style hub tokenizer (WordPiece, [CLS] / [SEP],
no BOS / EOS): [CLS] starts a caption, [SEP] ends it, word pieces decode back to words."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch

import plait
from plait.config import PlaitConfig
from plait.tasks.captioning_model import IGNORE
from plait.tasks.captioning_predictor import CaptioningPredictor

from .test_captioning import scene_config, train_steps

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def save_wordpiece_tokenizer(folder: Path, captions: list[str]) -> Path:
    """A BERT tokenizer over the captions' words, plural nouns split into word + `##s`
    (so decoding must join pieces), saved with `save_pretrained`."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    words = {w for c in captions for w in re.findall(r"\w+|[^\w\s]", c.lower())}
    words = {w[:-1] if w.endswith("s") and w[:-1] in words else w for w in words}
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join([*SPECIAL, *sorted(words), "##s"]) + "\n")
    wordpiece = BertWordPieceTokenizer(str(vocab), lowercase=True)
    names = dict(zip(("pad", "unk", "cls", "sep", "mask"), SPECIAL, strict=True))
    tokenizer = BertTokenizerFast(
        tokenizer_object=wordpiece._tokenizer, **{f"{k}_token": v for k, v in names.items()}
    )
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from plait.datasets.captioned_scenes import generate_captioned_scenes

    root = tmp_path_factory.mktemp("wordpiece-scenes")
    generate_captioned_scenes(root, n_train=16, n_valid=4, n_test=4, n_heldout=0, seed=0)
    return root


def test_scratch_decoder_with_a_wordpiece_tokenizer(scenes: Path, tmp_path: Path):
    captions = pd.read_csv(scenes / "train.csv")["caption"].tolist()
    tokenizer_dir = save_wordpiece_tokenizer(tmp_path / "bert-tokenizer", captions)
    raw = scene_config(scenes, tmp_path)
    raw["modalities"]["caption"]["encoder"] = {"type": "huggingface", "model": str(tokenizer_dir)}
    model, data, losses = train_steps(raw, 2, lr=1e-2)
    assert all(torch.isfinite(torch.tensor(losses)))

    tokenizer = data.processors["caption"].tokenizer
    assert tokenizer.unk_token_id not in tokenizer(captions)["input_ids"][0]
    tokens = model.tokens
    assert tokenizer.bos_token_id is None and tokenizer.eos_token_id is None
    assert (tokens.bos, tokens.eos) == (tokenizer.cls_token_id, tokenizer.sep_token_id)
    assert tokens.pad == tokenizer.pad_token_id and tokens.vocab_size == len(tokenizer)

    # targets: the caption's word pieces, then [SEP]; never [CLS] or padding inside
    encoded = tokenizer(captions[:2], padding=True, return_tensors="pt")
    keep = torch.ones(2, dtype=torch.bool)
    targets = tokens.targets(encoded["input_ids"], encoded["attention_mask"], keep)
    for row, caption in zip(targets.tolist(), captions[:2], strict=True):
        real = [t for t in row if t != IGNORE]
        assert real[-1] == tokens.eos and tokens.bos not in real and tokens.pad not in real
        assert tokenizer.decode(real[:-1]) == tokenizer.decode(tokenizer.encode(caption)[1:-1])

    config = PlaitConfig.from_dict(raw)
    predictor = CaptioningPredictor(model, config, data.processors)
    made = predictor.caption(scenes / "test.csv", progress=False, max_length=6)
    assert len(made) == 4
    for text in made["caption"]:
        assert "[SEP]" not in text and "[CLS]" not in text and "##" not in text
        assert len(tokenizer.tokenize(text)) <= 6

    # [SEP] is the end token: made the likeliest token, every caption stops at once, empty
    with torch.no_grad():
        model.decoder.out.bias[tokens.eos] += 1e4
    stopped = predictor.caption(scenes / "test.csv", progress=False, max_length=6)
    assert stopped["caption"].tolist() == [""] * 4
    with torch.no_grad():
        model.decoder.out.bias[tokens.eos] -= 1e4

    folder = predictor.save(tmp_path / "model")  # the tokenizer travels in processors/
    pd.testing.assert_frame_equal(
        plait.load(folder).caption(scenes / "test.csv", progress=False, max_length=6), made
    )
