"""The fusion contract: {modality: EncoderOutput} + presence -> one fused vector [B, D].

Every fusion handles missing modalities (presence False for some samples) itself, in the
way that fits its maths, and never returns NaN, even for a sample with nothing present.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from plait.config import FusionOptions
from plait.encoders.base import EncoderOutput


class Fusion(nn.Module):
    """Base class for fusions.

    Constructor: `(input_dims: dict[str, int], options: Options, num_outputs: int)`.
    `Options` is the fusion's own options model from `plait.config.FUSION_OPTIONS`
    (`FusionOptions`, or a subclass adding the fusion's keys), so a fusion reads only the
    keys it declares. `num_outputs` is only used by fusions that predict per modality
    (`late`), which then set `produces_logits = True` and the model skips its shared head.
    """

    Options: ClassVar[type[FusionOptions]] = FusionOptions
    output_dim: int
    produces_logits: bool = False

    def __init__(
        self, input_dims: dict[str, int], options: FusionOptions, num_outputs: int
    ) -> None:
        super().__init__()
        self.modalities = list(input_dims)
        self.input_dims = dict(input_dims)
        self.options = options

    def forward(
        self, features: dict[str, EncoderOutput], presence: dict[str, Tensor]
    ) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
