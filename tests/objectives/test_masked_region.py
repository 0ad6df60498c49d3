"""Masked region modelling: which regions are hidden, their targets and the loss over them."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from plait.config import EncoderConfig
from plait.encoders.image import ImageCNNEncoder
from plait.heads.masked_region import MaskedRegionHead
from plait.objectives.masked_region import (
    choose_regions,
    mask_regions,
    masked_region_loss,
    region_means,
)


@pytest.mark.parametrize(("grid", "ratio", "count"), [((4, 4), 0.25, 4), ((8, 8), 0.4, 26)])
def test_mask_hides_the_requested_share_of_regions(grid, ratio, count) -> None:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(5, 3, 32, 32) + 3.0  # no pixel is 0 before masking
    masked, targets, chosen = mask_regions(inputs, grid, ratio, generator)
    assert chosen.shape == (5, grid[0] * grid[1]) and targets.shape == (5, grid[0] * grid[1], 3)
    assert (chosen.sum(1) == count).all()
    size = 32 // grid[0]
    for row in range(5):
        for region in range(grid[0] * grid[1]):
            top, left = (region // grid[1]) * size, (region % grid[1]) * size
            patch = masked[row, :, top : top + size, left : left + size]
            if chosen[row, region]:
                assert (patch == 0).all()
            else:
                assert torch.equal(patch, inputs[row, :, top : top + size, left : left + size])
    # hidden pixels are exactly the chosen share of the image
    assert (masked == 0).float().mean().item() == pytest.approx(count / (grid[0] * grid[1]))


def test_choice_differs_between_rows_and_never_hides_everything() -> None:
    chosen = choose_regions(64, 16, 0.3, torch.Generator().manual_seed(1))
    assert len({tuple(row.tolist()) for row in chosen}) > 1
    assert (choose_regions(4, 2, 0.99).sum(1) == 1).all()  # at most G - 1 of G
    assert (choose_regions(4, 16, 0.01).sum(1) == 1).all()  # at least one


def test_region_means_by_hand() -> None:
    image = torch.arange(16.0).view(1, 1, 4, 4)  # rows 0-3, 4-7, 8-11, 12-15
    means = region_means(image, (2, 2))  # four 2 x 2 regions
    assert means.view(-1).tolist() == [2.5, 4.5, 10.5, 12.5]
    spectrogram = torch.arange(12.0).view(1, 3, 4)  # [B, H, W]: read as one channel
    _, targets, _ = mask_regions(spectrogram, (1, 2), 0.5)
    assert targets.view(-1).tolist() == [4.5, 6.5]


def test_loss_by_hand_counts_only_hidden_regions() -> None:
    targets = torch.tensor([[[1.0], [2.0], [3.0], [4.0]]])  # [1, 4, 1]
    predictions = torch.tensor([[[0.0], [2.5], [9.0], [1.0]]], requires_grad=True)
    chosen = torch.tensor([[True, True, False, True]])
    loss = masked_region_loss(predictions, targets, chosen)
    assert loss.item() == pytest.approx((1.0 + 0.25 + 9.0) / 3)  # region 2 (error 36) left out
    loss.backward()
    assert predictions.grad is not None and predictions.grad[0, 2, 0] == 0
    assert (predictions.grad[0, [0, 1, 3], 0] != 0).all()
    none = torch.zeros(1, 4, dtype=torch.bool)
    assert masked_region_loss(predictions, targets, none).item() == 0.0


def test_head_predicts_each_region_from_tower_and_context() -> None:
    head = MaskedRegionHead(16, 8, regions=9, channels=3, key="pixel_values", dropout=0.0)
    tower, context = torch.randn(2, 5, 16), torch.randn(2, 7, 8)
    mask = torch.ones(2, 5, dtype=torch.bool)
    context_mask = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])
    out = head(tower, mask, context, context_mask)
    assert out.shape == (2, 9, 3)
    # the context is read: other words change the prediction, padded ones do not
    other = context.clone()
    other[0] += 1.0
    assert not torch.allclose(head(tower, mask, other, context_mask)[0], out[0])
    padded = context.clone()
    padded[1, 3:] = 5.0
    torch.testing.assert_close(head(tower, mask, padded, context_mask)[1], out[1])


def _squares(count: int, generator: torch.Generator) -> Tensor:
    """Dark 16 x 16 images with a red, green or blue 8 x 8 square in one quadrant."""
    colours = torch.tensor([[0.7, -0.76, -0.76], [-0.76, 0.57, -0.69], [-0.76, -0.69, 0.72]])
    images = torch.full((count, 3, 16, 16), -0.85)
    colour = torch.randint(0, 3, (count,), generator=generator)
    place = torch.randint(0, 4, (count,), generator=generator)
    for i in range(count):
        top, left = int(place[i] // 2) * 8, int(place[i] % 2) * 8
        images[i, :, top : top + 8, left : left + 8] = colours[colour[i]].view(3, 1, 1)
    return images + 0.05 * torch.randn(images.shape, generator=generator)


def test_head_learns_hidden_regions_from_what_is_visible() -> None:
    """With no caption at all, a hidden part of the square can only be recovered from the
    visible rest of the image: the trained error falls far below that of guessing each
    region's average, so the head reads the tower's features, not only region positions."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    encoder = ImageCNNEncoder(EncoderConfig(type="image_cnn", dim=32, layers=2), 3, 16)
    head = MaskedRegionHead(32, 8, regions=16, channels=3, key="pixel_values", dropout=0.0)
    optimiser = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=3e-3)
    context, context_mask = torch.zeros(16, 1, 8), torch.ones(16, 1, dtype=torch.bool)
    losses = []
    for _ in range(400):
        masked, targets, chosen = mask_regions(_squares(16, generator), (4, 4), 0.3, generator)
        hidden = encoder(pixel_values=masked)
        predictions = head(hidden.sequence, hidden.mask, context, context_mask)
        loss = masked_region_loss(predictions, targets, chosen)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    test = _squares(256, generator)
    _, targets, chosen = mask_regions(test, (4, 4), 0.3, generator)
    guess = ((targets - targets.mean(0, keepdim=True)) ** 2)[chosen].mean().item()
    assert sum(losses[-25:]) / 25 < 0.75 * guess, (losses[-25:], guess)
