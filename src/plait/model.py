"""MultimodalModel: encoders + fusion + head, composed by the caller.

Plain `nn.Module` code: no Lightning, no config lookups in `forward`. `build.py` turns a
config into the parts; this class only wires them together.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from plait.encoders.base import EncoderOutput
from plait.fusion.base import Fusion


class MultimodalModel(nn.Module):
    """inputs {modality: {key: tensor}} + presence {modality: [B] bool} -> outputs [B, K].

    Args:
        encoders: one encoder per modality name.
        fusion: combines the encoders' outputs (handles missing modalities itself).
        head: maps the fused vector to task outputs; ignored when the fusion already
            produces logits (late fusion).
        modality_dropout: training only: chance of hiding each present modality of a
            sample (never all of them), so the model learns to work with one missing.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        fusion: Fusion,
        head: nn.Module,
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.head = nn.Identity() if fusion.produces_logits else head
        self.modality_dropout = modality_dropout

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders.keys())

    def encode(self, inputs: dict[str, dict[str, Tensor]]) -> dict[str, EncoderOutput]:
        return {name: self.encoders[name](**inputs[name]) for name in self.encoders}

    def fuse(self, inputs: dict[str, dict[str, Tensor]], presence: dict[str, Tensor]) -> Tensor:
        """The fused representation [B, D] (logits for late fusion)."""
        presence = {name: presence[name].bool() for name in self.encoders}
        if self.training and self.modality_dropout > 0:
            presence = drop_modalities(presence, self.modality_dropout)
        return self.fusion(self.encode(inputs), presence)

    def forward(self, inputs: dict[str, dict[str, Tensor]], presence: dict[str, Tensor]) -> Tensor:
        return self.head(self.fuse(inputs, presence))  # [B, num_outputs]


def drop_modalities(presence: dict[str, Tensor], rate: float) -> dict[str, Tensor]:
    """Hide each present modality with probability `rate`, keeping at least one per sample."""
    names = list(presence)
    present = torch.stack([presence[n] for n in names], dim=1)  # [B, M]
    keep = torch.rand(present.shape, device=present.device) >= rate  # [B, M]
    dropped = present & keep
    # a sample that lost everything keeps one of its present modalities, chosen at random
    emptied = ~dropped.any(1) & present.any(1)  # [B]
    if emptied.any():
        scores = torch.rand(present.shape, device=present.device).masked_fill(~present, -1.0)
        rescue = torch.zeros_like(present)
        rescue[torch.arange(len(present), device=present.device), scores.argmax(1)] = True
        dropped = torch.where(emptied.unsqueeze(1), rescue, dropped)
    return {n: dropped[:, i] for i, n in enumerate(names)}
