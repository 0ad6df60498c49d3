"""What the relation head adds to the contract: bfloat16 pairs, pooling, and sums over
real pairs only."""

from __future__ import annotations

import torch

from plait.heads.vqa.relation import RelationHead, RelationOptions

C, D, A = 4, 6, 5


def head(**options: object) -> RelationHead:
    torch.manual_seed(0)
    return RelationHead(C, D, A, RelationOptions(width=16, hidden=16, **options)).eval()


def ask(model: RelationHead, grid: torch.Tensor, mask: torch.Tensor | None = None):
    question = torch.randn(len(grid), 3, D, generator=torch.Generator().manual_seed(1))
    real = torch.ones(len(grid), 3, dtype=torch.bool)
    return model(grid, mask, question, real, question.mean(1))


def test_bf16_pairs_stay_close_to_float32():
    grid = torch.randn(2, C, 4, 4)
    exact, fast = head(bf16=False), head(bf16=True)
    with torch.no_grad():
        torch.testing.assert_close(ask(fast, grid), ask(exact, grid), atol=0.05, rtol=0.05)


def test_runs_under_the_trainers_bf16_autocast():
    """`bf16: false` must not switch off an autocast the trainer opened (bf16-mixed)."""
    grid = torch.randn(2, C, 4, 4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        grid_bf16 = grid.to(torch.bfloat16)  # what a CNN under autocast hands over
        assert ask(head(bf16=False), grid_bf16).shape == (2, A)


def test_pool_averages_real_cells_into_fewer_objects():
    grid = torch.randn(2, C, 8, 8)
    mask = torch.ones(2, 8, 8, dtype=torch.bool)
    mask[1, :, 6:] = False
    pooled = head(pool=4)
    with torch.no_grad():
        before = ask(pooled, grid, mask)
        grid[1, :, :, 6:] = 50.0  # padding of the second map
        torch.testing.assert_close(ask(pooled, grid, mask), before)
        # pooling to 4x4 equals handing over the 4x4 average of a full map
        full = ask(pooled, grid[:1])
        averaged = torch.nn.functional.avg_pool2d(grid[:1], 2)
        torch.testing.assert_close(ask(head(pool=None), averaged), full)
