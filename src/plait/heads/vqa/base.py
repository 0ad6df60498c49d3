"""The contract every VQA answer head keeps.

The context (a picture, or a sound's log-mel map) arrives as a feature map, not a pooled
vector, because relational questions ("what is closest to the red object?") need where
things are. The question arrives both as token states and as one pooled vector, so a head
can attend over words (transformer), condition on the sentence (FiLM, relation network)
or just fuse vectors (the CNN+MLP baseline).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn


class VqaHeadOptions(BaseModel):
    """A head's own settings (`vqa.head_options` in the config); typos are refused."""

    model_config = ConfigDict(extra="forbid")


class VqaHead(nn.Module):
    """grid (B, C, H, W) + question tokens (B, T, D) -> answer logits (B, num_answers).

    `grid_mask` (B, H, W), True where a cell is real, is given when maps of one batch
    differ in size (padded audio), else None. `question_mask` (B, T) is True on real
    tokens; `question_vector` (B, D) is the pooled question.
    """

    Options: ClassVar[type[VqaHeadOptions]] = VqaHeadOptions

    def __init__(
        self, grid_channels: int, question_dim: int, num_answers: int, options: Any
    ) -> None:
        super().__init__()
        self.grid_channels = grid_channels
        self.question_dim = question_dim
        self.num_answers = num_answers
        self.options = options

    def forward(
        self,
        grid: Tensor,
        grid_mask: Tensor | None,
        question: Tensor,
        question_mask: Tensor,
        question_vector: Tensor,
    ) -> Tensor:
        raise NotImplementedError
