"""The prediction head: a small MLP from the fused vector to the task's outputs.

Classification, multi-label and regression share the same network; they differ only in
the loss (`plait.objectives`) and in how outputs are read (softmax, sigmoid, identity).
"""

from __future__ import annotations

from torch import Tensor, nn

from plait.config import HeadConfig


class MLPHead(nn.Module):
    """fused [B, D] -> outputs [B, num_outputs]; `hidden: 0` gives a single linear layer."""

    def __init__(self, input_dim: int, num_outputs: int, config: HeadConfig) -> None:
        super().__init__()
        if config.hidden > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(input_dim, config.hidden),
                nn.GELU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden, num_outputs),
            )
        else:
            self.net = nn.Linear(input_dim, num_outputs)
        self.num_outputs = num_outputs

    def forward(self, fused: Tensor) -> Tensor:
        return self.net(fused)  # [B, num_outputs]
