"""The Batch that flows from the data loader into the model.

Every modality is a dict of tensors (text: `input_ids`, `attention_mask`; image:
`pixel_values`; audio: `features` for scratch encoders or the Hugging Face feature
extractor's keys) plus one boolean presence flag per sample. A sample whose value is
missing still gets a placeholder tensor (zeros), so shapes stay fixed, and `presence`
tells every fusion to ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Batch:
    inputs: dict[str, dict[str, Tensor]]  # modality -> {name: [B, ...]}
    presence: dict[str, Tensor]  # modality -> [B] bool
    labels: Tensor | None = None  # [B] long, [B, L] float (multilabel) or [B, R] float
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(next(iter(self.presence.values())))

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            inputs={m: {k: v.to(device) for k, v in d.items()} for m, d in self.inputs.items()},
            presence={m: p.to(device) for m, p in self.presence.items()},
            labels=None if self.labels is None else self.labels.to(device),
            ids=self.ids,
        )
