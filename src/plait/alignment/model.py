"""AlignedModel: two towers, two projections, one shared and normalised embedding space.

Plain `nn.Module` code, composed by `plait.alignment.build`. Besides the contrastive
embedding it can carry the optional heads its objectives need: a matching head (ITM)
a masked-language-model decoder (MLM) and masked-region heads (MRM); each is absent when
unused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plait.encoders.base import EncoderOutput


class AlignedModel(nn.Module):
    """{modality: inputs} -> {modality: [B, D] unit vectors}, for the two aligned modalities.

    Args:
        encoders: the two towers, in pair order (name -> encoder).
        projections: per name, pooled [B, D_tower] -> [B, D].
        logit_scale: initial log of the inverse temperature (CLIP: log(1 / 0.07)).
        logit_bias: initial SigLIP bias; None when no objective uses one.
        learn_temperature: train the scale (and bias) or keep them fixed.
        matcher: ITM head over both towers' sequences, or None.
        decoder: MLM head (text sequence + other modality as context), or None.
        regions: MRM heads per masked modality (image / audio name -> MaskedRegionHead),
            or None.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        projections: Mapping[str, nn.Module],
        *,
        logit_scale: float = math.log(1 / 0.07),
        logit_bias: float | None = None,
        learn_temperature: bool = True,
        matcher: nn.Module | None = None,
        decoder: nn.Module | None = None,
        regions: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if len(encoders) != 2 or set(encoders) != set(projections):
            raise ValueError("an aligned model needs two encoders and a projection for each")
        self.encoders = nn.ModuleDict(encoders)
        self.projections = nn.ModuleDict(projections)
        self.logit_scale = nn.Parameter(
            torch.tensor(float(logit_scale)), requires_grad=learn_temperature
        )
        bias = 0.0 if logit_bias is None else float(logit_bias)
        self.logit_bias = nn.Parameter(
            torch.tensor(bias), requires_grad=learn_temperature and logit_bias is not None
        )
        self.matcher = matcher
        self.decoder = decoder
        self.regions = nn.ModuleDict(regions) if regions else None

    @property
    def pair(self) -> tuple[str, str]:
        first, second = self.encoders.keys()
        return first, second

    def encode(self, name: str, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        return self.encoders[name](**inputs)

    def project(self, name: str, output: EncoderOutput) -> Tensor:
        """Pooled tower features -> a unit vector in the shared space: [B, D]."""
        return F.normalize(self.projections[name](output.pooled), dim=-1)

    def embed(self, name: str, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.project(name, self.encode(name, inputs))  # [B, D]

    def forward(self, inputs: Mapping[str, Mapping[str, Tensor]]) -> dict[str, Tensor]:
        """Embed every aligned modality present in `inputs`: {name: [B, D]}."""
        return {name: self.embed(name, inputs[name]) for name in self.pair if name in inputs}
