"""The `fusion` head (CNN+MLP baseline): any registry fusion, shapes, masks, gradients."""

from __future__ import annotations

import pytest
import torch

from plait.heads.vqa import VQA_HEADS, vqa_head_class
from plait.heads.vqa.fusion_head import FusionHead, FusionHeadOptions


def inputs(batch: int = 3, grid: tuple[int, int] = (4, 4)) -> dict:
    torch.manual_seed(0)
    return {
        "grid": torch.randn(batch, 8, *grid),
        "grid_mask": None,
        "question": torch.randn(batch, 5, 6),
        "question_mask": torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4]),
        "question_vector": torch.randn(batch, 6),
    }


def test_the_table_names_the_fusion_head() -> None:
    assert VQA_HEADS["fusion"].endswith(":FusionHead") and vqa_head_class("fusion") is FusionHead


@pytest.mark.parametrize("fusion", ["concat", "gated", "cross_attention", "low_rank", "late"])
@pytest.mark.parametrize("pool_side", [0, 2])
def test_logits_and_gradients(fusion: str, pool_side: int) -> None:
    options = FusionHeadOptions(fusion=fusion, dim=8, heads=2, hidden=8, pool_side=pool_side)
    head = FusionHead(8, 6, 5, options)
    values = inputs()
    values["grid"].requires_grad_(True)
    logits = head(**values)
    assert logits.shape == (3, 5) and bool(torch.isfinite(logits).all())
    logits.sum().backward()
    assert values["grid"].grad is not None and bool(values["grid"].grad.abs().sum() > 0)


def test_padded_cells_change_nothing() -> None:
    """A map padded on the right (audio of different lengths) answers as the unpadded one
    when the mask marks the padding, for the global-max pooling."""
    head = FusionHead(8, 6, 4, FusionHeadOptions(dim=8, hidden=0, pool_side=0)).eval()
    values = inputs(grid=(1, 4))
    padded = dict(values)
    padded["grid"] = torch.cat([values["grid"], torch.full((3, 8, 1, 2), 50.0)], dim=-1)
    padded["grid_mask"] = torch.tensor([True] * 4 + [False] * 2).expand(3, 1, 6)
    assert torch.allclose(head(**padded), head(**values), atol=1e-6)


def test_options_refuse_unknown_fusions_with_the_closest_name() -> None:
    with pytest.raises(ValueError, match="did you mean 'gated'"):
        FusionHeadOptions(fusion="gatd")


def test_padded_maps_of_several_lengths_answer_as_each_alone() -> None:
    """Average pooling to a 2x2 grid: each row of a batch of maps right-padded to the
    longest (lengths 6, 3, 5, 3) is pooled over its own columns, as it would be alone."""
    head = FusionHead(8, 6, 4, FusionHeadOptions(dim=8, hidden=8, pool_side=2)).eval()
    torch.manual_seed(1)
    widths = [6, 3, 5, 3]
    grid = torch.randn(4, 8, 3, 6)
    mask = torch.zeros(4, 3, 6, dtype=torch.bool)
    for row, width in enumerate(widths):
        mask[row, :, :width] = True
        grid[row, :, :, width:] = 50.0  # what padding holds must not matter
    question = torch.randn(4, 5, 6)
    question_mask = torch.ones(4, 5, dtype=torch.bool)
    vector = torch.randn(4, 6)
    with torch.no_grad():
        batched = head(grid, mask, question, question_mask, vector)
        for row, width in enumerate(widths):
            alone = head(grid[row : row + 1, :, :, :width], None, question[row : row + 1],
                         question_mask[row : row + 1], vector[row : row + 1])  # fmt: skip
            torch.testing.assert_close(batched[row : row + 1], alone, atol=1e-6, rtol=1e-5)
    grid.requires_grad_(True)
    head(grid, mask, question, question_mask, vector).sum().backward()
    assert grid.grad is not None and bool(grid.grad[1, :, :, :3].abs().sum() > 0)
    assert float(grid.grad[1, :, :, 3:].abs().sum()) == 0.0  # padding gets no gradient


def test_unpadded_maps_pool_exactly_as_before() -> None:
    """A map without padding (no mask, or a mask of all True) is pooled by the one
    adaptive average over the whole map, bit for bit: saved models answer as they did."""
    head = FusionHead(8, 6, 4, FusionHeadOptions(dim=8, hidden=8, pool_side=3)).eval()
    grid = torch.randn(5, 8, 4, 7)
    before = torch.nn.functional.adaptive_avg_pool2d(grid, (3, 3)).flatten(1)
    assert torch.equal(head.pool(grid, None), before)
    assert torch.equal(head.pool(grid, torch.ones(5, 4, 7, dtype=torch.bool)), before)
