"""Alignment losses against values worked out by hand on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from plait.objectives.contrastive import (
    clip_loss,
    fingerprints,
    positive_pairs,
    siglip_loss,
    similarity_logits,
)
from plait.objectives.masked_lm import IGNORE, mask_tokens, masked_lm_loss
from plait.objectives.matching import hard_negatives, matching_loss, matching_pairs

EYE = torch.eye(2)
LOG1 = torch.tensor(0.0)  # logit scale 1


def test_clip_loss_known_value() -> None:
    # logits = I: each row's CE is -log(e / (e + 1)) = log(1 + 1/e), both directions alike
    expected = math.log(1 + math.exp(-1))
    assert clip_loss(EYE, EYE, LOG1).item() == pytest.approx(expected, abs=1e-6)


def test_clip_loss_uses_the_scale_and_clamps_it_at_100() -> None:
    a = F.normalize(torch.tensor([[1.0, 0.2], [0.1, 1.0]]), dim=1)
    scale = torch.tensor(math.log(2.0))
    logits = 2.0 * a @ EYE.T
    target = torch.arange(2)
    expected = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    assert clip_loss(a, EYE, scale).item() == pytest.approx(expected.item(), abs=1e-6)
    huge = clip_loss(EYE, EYE, torch.tensor(10.0))  # exp(10) > 100: clamped
    assert huge.item() == pytest.approx(math.log(1 + math.exp(-100)), abs=1e-6)
    assert similarity_logits(EYE, EYE, torch.tensor(10.0))[0, 0].item() == pytest.approx(100.0)


def test_clip_loss_trains_the_temperature() -> None:
    scale = torch.tensor(0.0, requires_grad=True)
    clip_loss(EYE, EYE, scale).backward()
    # a larger scale sharpens the right answer: the gradient says "increase"
    assert scale.grad is not None and scale.grad.item() < 0


def test_siglip_loss_known_value() -> None:
    # logits = I with bias 0: two matches at logit 1, two non-matches at logit 0
    expected = -(2 * F.logsigmoid(torch.tensor(1.0)) + 2 * F.logsigmoid(torch.tensor(0.0))) / 2
    got = siglip_loss(EYE, EYE, LOG1, torch.tensor(0.0))
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)
    assert got.item() == pytest.approx(1.00636, abs=1e-4)


def test_siglip_bias_shifts_every_pair() -> None:
    bias = torch.tensor(-10.0)
    terms = [F.logsigmoid(torch.tensor(1 - 10.0)), F.logsigmoid(torch.tensor(10.0))]
    expected = -(2 * terms[0] + 2 * terms[1]) / 2
    assert siglip_loss(EYE, EYE, LOG1, bias).item() == pytest.approx(expected.item(), abs=1e-5)


def test_fingerprints_find_identical_rows_only() -> None:
    ids = torch.tensor([[5, 6, 0], [5, 6, 0], [5, 7, 0]])
    prints = fingerprints({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    assert prints[0] == prints[1] and prints[0] != prints[2]
    pairs = positive_pairs(prints, torch.tensor([1.0, 2.0, 3.0]))
    assert pairs.tolist() == [[True, True, False], [True, True, False], [False, False, True]]


def _duplicate_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=1)
    b = F.normalize(torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.0, 1.0]]), dim=1)
    positives = positive_pairs(torch.tensor([1.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 3.0]))
    return a, b, positives


def test_clip_duplicates_as_soft_positives() -> None:
    a, b, positives = _duplicate_batch()
    logits = a @ b.T
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    expected = 0.5 * (F.cross_entropy(logits, soft) + F.cross_entropy(logits.T, soft))
    got = clip_loss(a, b, LOG1, positives, "positive")
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)


def test_clip_duplicates_masked_out_of_the_negatives() -> None:
    a, b, positives = _duplicate_batch()
    logits = (a @ b.T).masked_fill(positives & ~torch.eye(3, dtype=torch.bool), float("-inf"))
    target = torch.arange(3)
    expected = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    got = clip_loss(a, b, LOG1, positives, "mask")
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)
    plain = clip_loss(a, b, LOG1, positives, "ignore")
    assert plain.item() == pytest.approx(clip_loss(a, b, LOG1).item())
    assert plain.item() > got.item()  # the duplicate was a false negative


def test_siglip_duplicates() -> None:
    a, b, positives = _duplicate_batch()
    logits = a @ b.T
    signs = positives.float() * 2 - 1
    expected = -F.logsigmoid(signs * logits).sum() / 3
    got = siglip_loss(a, b, LOG1, torch.tensor(0.0), positives, "positive")
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)
    keep = ~(positives & ~torch.eye(3, dtype=torch.bool))
    plain_signs = torch.eye(3) * 2 - 1
    masked = -(F.logsigmoid(plain_signs * logits) * keep).sum() / 3
    got_masked = siglip_loss(a, b, LOG1, torch.tensor(0.0), positives, "mask")
    assert got_masked.item() == pytest.approx(masked.item(), abs=1e-6)


def test_loss_is_not_capped_by_batch_size() -> None:
    torch.manual_seed(0)
    a = F.normalize(torch.randn(2048, 8), dim=1)
    b = F.normalize(a + 0.1 * torch.randn(2048, 8), dim=1)
    assert torch.isfinite(clip_loss(a, b, torch.tensor(math.log(20.0))))
    assert torch.isfinite(siglip_loss(a, b, LOG1, torch.tensor(-10.0)))


def test_hard_negatives_never_draw_a_match() -> None:
    torch.manual_seed(0)
    similarity = torch.tensor([[1.0, 0.9, -5.0], [0.2, 1.0, 0.1], [0.0, 0.0, 1.0]])
    positives = torch.tensor([[True, False, False], [False, True, True], [False, True, True]])
    for _ in range(50):
        drawn = hard_negatives(similarity * 20, positives)
        assert not positives[torch.arange(3), drawn].any()
    # row 0: the confusable column 1 is drawn far more often than column 2
    draws = torch.stack([hard_negatives(similarity * 5, positives)[0] for _ in range(200)])
    assert (draws == 1).float().mean() > 0.9


def test_hard_negatives_when_everything_matches() -> None:
    drawn = hard_negatives(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool))
    assert drawn.tolist() == [-1, -1]
    index_a, index_b, label = matching_pairs(drawn, drawn)
    assert label.tolist() == [1, 1] and index_a.tolist() == index_b.tolist() == [0, 1]


def test_matching_pairs_and_loss() -> None:
    index_a, index_b, label = matching_pairs(torch.tensor([1, 0]), torch.tensor([-1, 0]))
    # true pairs, then (a_i, hard b) for both rows, then (hard a, b_1) for the one b
    assert index_a.tolist() == [0, 1, 0, 1, 0]
    assert index_b.tolist() == [0, 1, 1, 0, 1]
    assert label.tolist() == [1, 1, 0, 0, 0]
    # a confident right answer costs almost nothing, a confident wrong one a lot
    logits = torch.tensor([[-10.0, 10.0], [10.0, -10.0]])
    assert matching_loss(logits, torch.tensor([1, 0])).item() < 1e-6
    assert matching_loss(logits, torch.tensor([0, 1])).item() > 10


def test_mask_tokens_respects_special_tokens_and_padding() -> None:
    torch.manual_seed(0)
    ids = torch.tensor([[101, 7, 8, 9, 102, 0], [101, 5, 102, 0, 0, 0]])
    attention = (ids != 0).long()
    special = torch.tensor([0, 101, 102])
    chosen_any = torch.zeros_like(ids, dtype=torch.bool)
    for _ in range(200):
        masked, targets = mask_tokens(
            ids, attention, mask_id=103, vocab_size=200, special_ids=special, probability=0.5
        )
        chosen = targets != IGNORE
        chosen_any |= chosen
        assert chosen.any()
        assert torch.equal(targets[chosen], ids[chosen])
        assert torch.equal(masked[~chosen], ids[~chosen])
    # only real, non-special tokens were ever chosen, and all of them at some point
    assert chosen_any.tolist() == [
        [False, True, True, True, False, False],
        [False, True, False, False, False, False],
    ]


def test_mask_tokens_mixes_mask_random_and_kept() -> None:
    torch.manual_seed(0)
    ids = torch.randint(5, 100, (64, 32))
    masked, targets = mask_tokens(
        ids, torch.ones_like(ids), mask_id=1, vocab_size=100, special_ids=torch.tensor([0])
    )
    chosen = targets != IGNORE
    rate = chosen.float().mean().item()
    assert 0.12 < rate < 0.18
    as_mask = (masked[chosen] == 1).float().mean().item()
    assert 0.72 < as_mask < 0.88


def test_masked_lm_loss_known_value() -> None:
    logits = torch.zeros(1, 3, 4)  # uniform over 4 tokens: CE = log 4 at each chosen place
    targets = torch.tensor([[IGNORE, 2, IGNORE]])
    assert masked_lm_loss(logits, targets).item() == pytest.approx(math.log(4))
    nothing = torch.full((1, 3), IGNORE)
    assert masked_lm_loss(logits, nothing).item() == 0.0
