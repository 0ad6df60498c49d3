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
