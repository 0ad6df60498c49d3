"""Supervised losses: known values on tiny inputs, and the weights they take."""

from __future__ import annotations

import math
import os
import stat

import torch

from plait.config import HeadConfig
from plait.objectives import TaskLoss, classification_loss, multilabel_loss, regression_loss
from plait.utils.io import atomic_write_text


def test_classification_loss_known_value():
    logits = torch.tensor([[0.0, 0.0]])
    loss = classification_loss(logits, torch.tensor([0])).item()
    assert math.isclose(loss, math.log(2), rel_tol=1e-6)
    weighted = classification_loss(
        torch.tensor([[2.0, 0.0], [2.0, 0.0]]),
        torch.tensor([0, 1]),
        class_weights=torch.tensor([1.0, 0.0]),
    )
    # class 1 has weight 0: only the first sample counts
    assert math.isclose(weighted.item(), math.log(1 + math.exp(-2)), rel_tol=1e-5)


def test_multilabel_pos_weight_is_used():
    logits = torch.zeros(1, 2)
    targets = torch.tensor([[1.0, 0.0]])
    plain = multilabel_loss(logits, targets).item()
    assert math.isclose(plain, math.log(2), rel_tol=1e-6)
    loss = TaskLoss(HeadConfig(task="multilabel"), torch.tensor([3.0, 1.0]))
    # positive term of label 0 weighted 3x: (3 log2 + log2) / 2
    assert math.isclose(loss(logits, targets).item(), 2 * math.log(2), rel_tol=1e-6)


def test_regression_losses():
    pred, target = torch.tensor([[0.0], [3.0]]), torch.tensor([[1.0], [0.0]])
    assert math.isclose(regression_loss(pred, target).item(), (1 + 9) / 2)
    assert math.isclose(regression_loss(pred, target, kind="huber").item(), (0.5 + 2.5) / 2)


def test_atomic_writes_get_a_normal_file_mode(tmp_path):
    path = tmp_path / "x.txt"
    atomic_write_text(path, "hello")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert path.read_text() == "hello"
