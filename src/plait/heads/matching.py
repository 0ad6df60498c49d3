"""The matching head of image(audio)-text matching (ITM): does this pair belong together?"""

from __future__ import annotations

from torch import Tensor, nn

from plait.encoders.base import EncoderOutput
from plait.fusion.base import Fusion


class MatchingHead(nn.Module):
    """Cross-attention fusion of the pair's token sequences -> 2 logits (no match, match).

    A binary decision over the full sequences sees details (word order, which object has
    which colour) that two pooled vectors compared by a dot product cannot.
    """

    def __init__(self, fusion: Fusion) -> None:
        super().__init__()
        self.fusion = fusion
        self.classifier = nn.Linear(fusion.output_dim, 2)

    def forward(self, outputs: dict[str, EncoderOutput], presence: dict[str, Tensor]) -> Tensor:
        return self.classifier(self.fusion(outputs, presence))  # [N, 2]
