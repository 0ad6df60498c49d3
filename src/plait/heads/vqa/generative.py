"""The generative answer (`vqa.answer: generate`): the captioning decoder writes the answer.

Instead of one logit per answer, the scratch caption decoder (`heads/caption_decoder.py`)
writes the answer word by word, cross-attending to the picture's cells (with 2-D
positions) and the question's words, as captioning attends to an image. Its vocabulary is
the words of the training answers (labels.json), so a saved model needs no new file.

Trained teacher-forced on the answer's words (`token_loss`). To keep the task's contract
(logits over the answer vocabulary: accuracy, `ask`, top-k, reports), `forward` scores
every known answer by its log-likelihood under the decoder; `generate` decodes freely
(greedy), which can also write an answer that is not in the vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from plait.heads.caption_decoder import TransformerCaptionDecoder
from plait.heads.decoding import DecodingOptions, generate
from plait.heads.vqa.base import VqaHead, VqaHeadOptions
from plait.heads.vqa.grid import full_mask

PAD, BOS, EOS = 0, 1, 2  # the answer vocabulary's special ids; words start at 3
IGNORE = -100


class GenerativeOptions(VqaHeadOptions):
    """`dim`, `layers`, `heads`, `dropout`: the caption decoder's; `max_grid`: the most
    rows / columns the cell position embeddings cover; `max_length`: answer words at most
    when decoding freely."""

    dim: int = Field(64, ge=1)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    max_grid: int = Field(32, ge=1)
    max_length: int = Field(8, ge=1)


class AnswerWords:
    """Answer strings <-> word ids (pad, start, end, then every word of the answers)."""

    def __init__(self, answers: Sequence[str]) -> None:
        words = sorted({w for answer in answers for w in str(answer).split()})
        self.words = words
        self.index = {w: i + 3 for i, w in enumerate(words)}
        self.size = len(words) + 3
        self.answers = [str(a) for a in answers]

    def encode(self, answer: str) -> list[int]:
        return [self.index[w] for w in answer.split()] + [EOS]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[i - 3] for i in ids if i >= 3)

    def targets(self) -> Tensor:
        """(A, L): every known answer's ids then the end token, IGNORE-padded."""
        rows = [self.encode(a) for a in self.answers]
        out = torch.full((len(rows), max(map(len, rows))), IGNORE, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row)
        return out


class GenerativeAnswerHead(VqaHead):
    """grid cells + question words -> memory -> caption decoder -> the answer's words."""

    Options: ClassVar[type[VqaHeadOptions]] = GenerativeOptions
    candidates: Tensor  # (A, L) every known answer's word ids (a buffer)

    def __init__(
        self,
        grid_channels: int,
        question_dim: int,
        num_answers: int,
        options: GenerativeOptions,
        *,
        answers: Sequence[str],
    ) -> None:
        super().__init__(grid_channels, question_dim, num_answers, options)
        if len(answers) != num_answers:
            raise ValueError(f"{len(answers)} answer strings for {num_answers} answers")
        self.words = AnswerWords(answers)
        dim = options.dim
        self.cells = nn.Linear(grid_channels, dim)
        self.rows = nn.Embedding(options.max_grid, dim)
        self.cols = nn.Embedding(options.max_grid, dim)
        self.question = nn.Linear(question_dim, dim)
        self.kind = nn.Embedding(2, dim)  # 0: a cell, 1: a question word
        longest = max(len(self.words.encode(a)) for a in self.words.answers)
        self.decoder = TransformerCaptionDecoder(
            self.words.size, dim, dim=dim, layers=options.layers, heads=options.heads,
            dropout=options.dropout, max_positions=max(longest, options.max_length) + 1,
        )  # fmt: skip
        self.register_buffer("candidates", self.words.targets(), persistent=False)  # (A, L)

    def memory(
        self, grid: Tensor, grid_mask: Tensor | None, question: Tensor, question_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(B, N + T, d) cells then words, and their mask (B, N + T), True: real."""
        _, _, height, width = grid.shape
        if max(height, width) > self.options.max_grid:
            raise ValueError(f"a {height}x{width} grid is larger than max_grid")
        rows = self.rows(torch.arange(height, device=grid.device))  # (H, d)
        cols = self.cols(torch.arange(width, device=grid.device))  # (W, d)
        position = (rows[:, None] + cols[None, :]).flatten(0, 1)  # (N, d)
        cells = self.cells(grid.flatten(2).transpose(1, 2)) + position + self.kind.weight[0]
        words = self.question(question) + self.kind.weight[1]  # (B, T, d)
        mask = torch.cat([full_mask(grid, grid_mask).flatten(1), question_mask.bool()], 1)
        return torch.cat([cells, words], dim=1), mask

    def teacher_forced(self, memory: Tensor, mask: Tensor, targets: Tensor) -> Tensor:
        """targets (B, L) answer ids (IGNORE: padding) -> next-word logits (B, L, V)."""
        tokens = targets.masked_fill(targets == IGNORE, PAD)  # (B, L)
        start = torch.full_like(tokens[:, :1], BOS)  # (B, 1)
        shifted = torch.cat([start, tokens[:, :-1]], dim=1)  # (B, L): bos, t1 .. t(L-1)
        return self.decoder(shifted, memory, mask)  # type: ignore[no-any-return]

    def forward(
        self,
        grid: Tensor,
        grid_mask: Tensor | None,
        question: Tensor,
        question_mask: Tensor,
        question_vector: Tensor,
    ) -> Tensor:
        """(B, A): the log-likelihood of every known answer (so argmax is the best one)."""
        memory, mask = self.memory(grid, grid_mask, question, question_mask)
        batch, answers = len(grid), len(self.candidates)
        targets = self.candidates.repeat(batch, 1)  # (B * A, L)
        logits = self.teacher_forced(
            memory.repeat_interleave(answers, 0), mask.repeat_interleave(answers, 0), targets
        )  # (B * A, L, V)
        logp = logits.float().log_softmax(-1)
        picked = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]  # (B * A, L)
        scores = (picked * (targets != IGNORE)).sum(-1)  # (B * A,)
        return scores.view(batch, answers)  # (B, A)

    def token_loss(
        self,
        grid: Tensor,
        grid_mask: Tensor | None,
        question: Tensor,
        question_mask: Tensor,
        answers: Tensor,
        label_smoothing: float = 0.0,
    ) -> Tensor:
        """Teacher-forced cross-entropy of the answers' words; `answers` (B,) are answer
        indices (a row without an answer, -100, is not scored)."""
        memory, mask = self.memory(grid, grid_mask, question, question_mask)
        known = answers >= 0
        targets = self.candidates[answers.clamp(min=0)]  # (B, L)
        targets = targets.masked_fill(~known[:, None], IGNORE)
        logits = self.teacher_forced(memory, mask, targets)  # (B, L, V)
        if not bool(known.any()):
            return logits.sum() * 0.0
        return F.cross_entropy(
            logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE,
            label_smoothing=label_smoothing,
        )  # fmt: skip

    @torch.no_grad()
    def generate(
        self, grid: Tensor, grid_mask: Tensor | None, question: Tensor, question_mask: Tensor
    ) -> list[str]:
        """Greedy, free decoding: the answer each row's decoder writes (any words it knows)."""
        memory, mask = self.memory(grid, grid_mask, question, question_mask)
        decoder = self.decoder

        def step(tokens: Tensor, rows: Tensor) -> Tensor:
            rows = rows.to(memory.device)
            return decoder(tokens.to(memory.device), memory[rows], mask[rows])[:, -1]

        options = DecodingOptions(max_length=self.options.max_length)
        ids = generate(step, len(memory), bos=BOS, eos=EOS, options=options)
        return [self.words.decode(row) for row in ids]
