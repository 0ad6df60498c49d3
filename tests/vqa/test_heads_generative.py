"""The generative answer (`vqa.answer: generate`): the caption decoder writes the answer.

Unit tests on random tensors (likelihoods, padding, gradients, a toy it learns to write),
then one end-to-end run on tiny reasoning data: train, save, reload, ask.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import Tensor

from plait.heads.vqa.generative import AnswerWords, GenerativeAnswerHead, GenerativeOptions

C, D = 3, 4
ANSWERS = ["top row", "middle row", "bottom row", "none"]


def make_head(seed: int = 0, **options: object) -> GenerativeAnswerHead:
    torch.manual_seed(seed)
    settings = GenerativeOptions(**{"dim": 16, "heads": 2, "layers": 1, "dropout": 0.0, **options})
    return GenerativeAnswerHead(C, D, len(ANSWERS), settings, answers=ANSWERS)


def inputs(batch: int = 2, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    grid = torch.randn(batch, C, 3, 3, generator=generator)
    question = torch.randn(batch, 4, D, generator=generator)
    question_mask = torch.ones(batch, 4, dtype=torch.bool)
    question_mask[-1, 2:] = False
    grid_mask = torch.ones(batch, 3, 3, dtype=torch.bool)
    grid_mask[-1, :, 2:] = False
    return grid, grid_mask, question, question_mask


def test_answer_words_round_trip():
    words = AnswerWords(ANSWERS)
    assert words.size == 3 + len({"top", "middle", "bottom", "row", "none"})
    for answer in ANSWERS:
        assert words.decode(words.encode(answer)) == answer
    assert words.targets().shape == (len(ANSWERS), 3)  # two words and the end token


def test_scores_are_log_likelihoods_of_distinct_answers():
    head = make_head().eval()
    grid, grid_mask, question, question_mask = inputs()
    with torch.no_grad():
        scores = head(grid, grid_mask, question, question_mask, question.mean(1))
    assert scores.shape == (2, len(ANSWERS))
    assert (scores < 0).all()
    # different word sequences: their probabilities sum to at most 1
    assert (scores.logsumexp(-1) <= 1e-6).all()


def test_padding_does_not_change_scores_or_generation():
    head = make_head().eval()
    grid, grid_mask, question, question_mask = inputs()
    with torch.no_grad():
        before = head(grid, grid_mask, question, question_mask, question.mean(1))
        text = head.generate(grid, grid_mask, question, question_mask)
        grid[-1, :, :, 2:] = 99.0
        question[-1, 2:] = -99.0
        after = head(grid, grid_mask, question, question_mask, question.mean(1))
        torch.testing.assert_close(after, before)
        assert head.generate(grid, grid_mask, question, question_mask) == text


def test_token_loss_trains_every_parameter_and_skips_rows_without_answer():
    head = make_head().train()
    grid, grid_mask, question, question_mask = inputs()
    loss = head.token_loss(grid, grid_mask, question, question_mask, torch.tensor([0, 2]))
    loss.backward()
    for name, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    none = head.token_loss(grid, grid_mask, question, question_mask, torch.tensor([-100, -100]))
    assert none.item() == 0.0


def test_learns_to_write_the_answer_the_map_shows():
    """Each map lights one of 3 channels in a random cell; the answer is that channel's
    two-word name ("top row", ...): the decoder must read the map and write both words."""
    head = make_head(dim=32)
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    question = torch.zeros(32, 1, D)
    real = torch.ones(32, 1, dtype=torch.bool)

    def toy(seed: int) -> tuple[Tensor, Tensor]:
        generator = torch.Generator().manual_seed(seed)
        channel = torch.randint(0, C, (32,), generator=generator)
        cell = torch.randint(0, 9, (32,), generator=generator)
        grid = torch.zeros(32, C, 9)
        grid[torch.arange(32), channel, cell] = 3.0
        return grid.view(32, C, 3, 3), channel  # answer index = channel

    for step in range(60):
        grid, answer = toy(step)
        loss = head.token_loss(grid, None, question, real, answer)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    grid, answer = toy(1000)
    written = head.eval().generate(grid, None, question, real)
    expected = [ANSWERS[int(a)] for a in answer]
    assert sum(w == e for w, e in zip(written, expected, strict=True)) >= 29
    with torch.no_grad():
        best = head(grid, None, question, real, question[:, 0]).argmax(-1)
    assert (best == answer).float().mean() >= 0.9


@pytest.fixture(scope="module")
def tiny_reasoning(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from plait.datasets.reasoning import generate_reasoning

    out = tmp_path_factory.mktemp("reasoning")
    generate_reasoning(out, n_train=12, n_valid=3, n_test=3, seed=0, questions=6)
    return out


def test_generate_trains_saves_reloads_and_answers(tiny_reasoning: Path, tmp_path: Path):
    import plait
    from plait.api import train_run
    from plait.config import PlaitConfig

    data = tiny_reasoning
    raw = {
        "name": "gen",
        "output_dir": str(tmp_path),
        "data": {
            "train": str(data / "train.csv"),
            "valid": str(data / "valid.csv"),
            "id": "id",
            "label": "answer",
            "on_error": "skip",
        },  # fmt: skip
        "modalities": {
            "image": {
                "kind": "image",
                "column": "image",
                "size": 32,
                "augment": False,
                "encoder": {"type": "image_cnn", "dim": 16, "layers": 2},
            },  # fmt: skip
            "question": {
                "kind": "text",
                "column": "question",
                "max_length": 16,
                "encoder": {"type": "text_gru", "dim": 16},
            },  # fmt: skip
        },
        "vqa": {"answer": "generate", "head_options": {"dim": 16, "heads": 2, "layers": 1}},
        "training": {
            "epochs": 1,
            "batch_size": 16,
            "threads": 1,
            "accelerator": "cpu",
            "progress": False,
            "tensorboard": False,
        },  # fmt: skip
        "evaluation": {"report": False},
    }
    run = train_run(PlaitConfig.from_dict(raw))
    model = plait.load(run.model_dir)
    assert isinstance(model.model.head, GenerativeAnswerHead)
    answers = model.ask(data / "valid.csv")
    assert len(answers) == len(pd.read_csv(data / "valid.csv"))
    assert set(answers["answer"]) <= set(model.answers)
    known_words = set(model.model.head.words.words)
    for text in answers["generated"]:  # free decoding: any words the decoder knows
        assert isinstance(text, str) and set(text.split()) <= known_words


def test_a_head_named_beside_generate_is_refused():
    from plait.config import PlaitConfig
    from plait.errors import ConfigError

    raw = {
        "data": {"train": "t.csv", "label": "answer"},
        "modalities": {
            "image": {"kind": "image", "column": "image"},
            "question": {"kind": "text", "column": "question"},
        },
        "vqa": {"answer": "generate", "head": "relation"},
    }
    with pytest.raises(ConfigError, match=r"vqa.head: relation.*not used.*generate"):
        PlaitConfig.from_dict(raw)
    del raw["vqa"]["head"]  # type: ignore[attr-defined]
    assert PlaitConfig.from_dict(raw).vqa.answer == "generate"  # type: ignore[union-attr]
