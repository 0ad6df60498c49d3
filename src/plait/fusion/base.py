"""The fusion contract: {modality: EncoderOutput} + presence -> one fused vector [B, D].

Every fusion handles missing modalities (presence False for some samples) itself, in the
way that fits its maths, and never returns NaN, even for a sample with nothing present.
"""

from __future__ import annotations

from torch import Tensor, nn

from plait.config import FusionConfig
from plait.encoders.base import EncoderOutput


class Fusion(nn.Module):
    """Base class for fusions.

    Constructor: `(input_dims: dict[str, int], config: FusionConfig, num_outputs: int)`.
    `num_outputs` is only used by fusions that predict per modality (`late`), which then
    set `produces_logits = True` and the model skips its shared head.
    """

    output_dim: int
    produces_logits: bool = False

    def __init__(self, input_dims: dict[str, int], config: FusionConfig, num_outputs: int) -> None:
        super().__init__()
        self.modalities = list(input_dims)
        self.input_dims = dict(input_dims)
        self.config = config

    def forward(
        self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]
    ) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
