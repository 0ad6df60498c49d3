"""Under DDP every process scores its rows against the whole global batch: two gloo
processes holding half a batch each compute the one-process loss on the full batch,
and their averaged gradients (what DDP applies) equal the one-process gradients."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from plait.alignment.model import AlignedModel
from plait.config import AlignmentConfig
from plait.encoders.base import EncoderOutput
from plait.tasks.alignment_objective import AlignmentObjective

BATCH, FEATURES = 8, 6


class Tiny(nn.Module):
    output_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(FEATURES, 4)

    def forward(self, x: Tensor) -> EncoderOutput:
        sequence = self.linear(x).unsqueeze(1)  # [B, 1, 4]
        mask = torch.ones(sequence.shape[:2], dtype=torch.bool)
        return EncoderOutput(sequence, sequence[:, 0], mask)


def _setup() -> tuple[AlignedModel, AlignmentObjective, dict, dict]:
    torch.manual_seed(0)
    model = AlignedModel({"a": Tiny(), "b": Tiny()}, {"a": nn.Linear(4, 3), "b": nn.Linear(4, 3)})
    objective = AlignmentObjective(
        AlignmentConfig(objectives=[{"name": "clip"}, {"name": "siglip", "weight": 0.5}])
    )
    x = torch.randn(BATCH, FEATURES)
    y = x + 0.3 * torch.randn(BATCH, FEATURES)
    x[1] = x[0]  # a duplicate row: its fingerprint must be found across processes too
    inputs = {"a": {"x": x}, "b": {"x": y}}
    presence = {"a": torch.ones(BATCH, dtype=torch.bool), "b": torch.ones(BATCH, dtype=torch.bool)}
    return model, objective, inputs, presence


def _grads(model: nn.Module) -> dict[str, Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        model, objective, inputs, presence = _setup()
        half = slice(rank * BATCH // 2, (rank + 1) * BATCH // 2)
        local = {m: {k: v[half] for k, v in d.items()} for m, d in inputs.items()}
        loss = objective(model, local, {m: p[half] for m, p in presence.items()})["loss"]
        loss.backward()
        torch.save({"loss": loss.detach(), "grads": _grads(model)}, f"{out}/rank{rank}.pt")
        # both processes finish their collectives before either tears gloo down: a
        # process that exits while its peer still talks to it aborts the peer
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_gathers_the_global_batch(tmp_path: Path) -> None:
    model, objective, inputs, presence = _setup()
    whole = objective(model, inputs, presence)["loss"]
    whole.backward()
    expected = _grads(model)

    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for result in ranks:
        torch.testing.assert_close(result["loss"], whole.detach())
    for name, grad in expected.items():
        averaged = (ranks[0]["grads"][name] + ranks[1]["grads"][name]) / 2
        torch.testing.assert_close(averaged, grad, msg=name)
