"""Every row of VQA_HEADS keeps the contract: shapes, masks respected, gradients, options.

Parametrized over the table, so a new head is tested for free. Padding must not reach the
answer: padded question tokens and padded grid cells are changed (or cut away) and the
logits must stay the same.
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor

from plait.heads.vqa import VQA_HEADS, VqaHead, vqa_head_class
from plait.heads.vqa.base import VqaHeadOptions

B, C, H, W, T, D, A = 3, 6, 4, 5, 5, 8, 7
TINY: dict[str, dict[str, object]] = {
    "film": {"channels": 8, "blocks": 2, "hidden": 16},
    "relation": {"pool": None, "width": 16, "hidden": 16},
    "fusion": {"dim": 16, "hidden": 16, "pool_side": 2},
    "transformer": {"dim": 16, "heads": 2, "layers": 1, "grid_layers": 1},
}


@pytest.fixture(scope="module", params=sorted(VQA_HEADS))
def head(request: pytest.FixtureRequest) -> VqaHead:
    name = request.param
    cls = vqa_head_class(name)
    torch.manual_seed(0)
    return cls(C, D, A, cls.Options(**TINY.get(name, {}))).eval()


def inputs(seed: int = 0) -> dict[str, Tensor | None]:
    generator = torch.Generator().manual_seed(seed)
    question_mask = torch.ones(B, T, dtype=torch.bool)
    question_mask[1, 3:] = False  # the second question has 3 real tokens
    grid_mask = torch.ones(B, H, W, dtype=torch.bool)
    grid_mask[2, :, 3:] = False  # the third map has 3 real columns (padded audio)
    return {
        "grid": torch.randn(B, C, H, W, generator=generator),
        "grid_mask": grid_mask,
        "question": torch.randn(B, T, D, generator=generator),
        "question_mask": question_mask,
        "question_vector": torch.randn(B, D, generator=generator),
    }


def test_options_refuse_typos_and_subclass_the_base(head: VqaHead):
    assert issubclass(head.Options, VqaHeadOptions)
    head.Options()  # every option has a default
    with pytest.raises(ValidationError):
        head.Options(not_an_option=1)


def test_logits_shape(head: VqaHead):
    logits = head(**inputs())
    assert logits.shape == (B, A) and torch.isfinite(logits).all()
    unpadded = {**inputs(), "grid_mask": None}
    assert head(**unpadded).shape == (B, A)


def test_padded_question_tokens_do_not_change_the_answer(head: VqaHead):
    batch = inputs()
    changed = {**batch, "question": batch["question"].clone()}
    changed["question"][1, 3:] = 100.0  # type: ignore[index]
    with torch.no_grad():
        torch.testing.assert_close(head(**changed), head(**batch))
        # and the same as the question given alone, without padding
        alone = {
            "grid": batch["grid"][1:2],  # type: ignore[index]
            "grid_mask": None,
            "question": batch["question"][1:2, :3],  # type: ignore[index]
            "question_mask": batch["question_mask"][1:2, :3],  # type: ignore[index]
            "question_vector": batch["question_vector"][1:2],  # type: ignore[index]
        }
        torch.testing.assert_close(head(**alone), head(**batch)[1:2], atol=1e-5, rtol=1e-4)


def test_padded_grid_cells_do_not_change_the_answer(head: VqaHead):
    batch = inputs()
    changed = {**batch, "grid": batch["grid"].clone()}
    changed["grid"][2, :, :, 3:] = 100.0  # type: ignore[index]
    with torch.no_grad():
        torch.testing.assert_close(head(**changed), head(**batch))


def test_a_padded_map_answers_as_it_would_alone(head: VqaHead):
    batch = inputs()
    alone = {
        "grid": batch["grid"][2:3, :, :, :3],  # type: ignore[index]
        "grid_mask": None,
        "question": batch["question"][2:3],  # type: ignore[index]
        "question_mask": batch["question_mask"][2:3],  # type: ignore[index]
        "question_vector": batch["question_vector"][2:3],  # type: ignore[index]
    }
    with torch.no_grad():
        torch.testing.assert_close(head(**alone), head(**batch)[2:3], atol=1e-5, rtol=1e-4)


def test_the_answer_depends_on_the_grid_and_the_question(head: VqaHead):
    batch = inputs()
    with torch.no_grad():
        base = head(**batch)
        other_grid = head(**{**batch, "grid": inputs(1)["grid"]})
        other_question = head(
            **{
                **batch,
                "question": inputs(1)["question"],
                "question_vector": inputs(1)["question_vector"],
            }
        )
    assert not torch.allclose(base, other_grid)
    assert not torch.allclose(base, other_question)


def test_every_parameter_gets_a_gradient(head: VqaHead):
    head.train()
    head.zero_grad()
    try:
        logits = head(**inputs())
        (logits * torch.randn_like(logits)).sum().backward()
    finally:
        head.eval()
    for name, param in head.named_parameters():
        if name.startswith("fusion.missing"):
            continue  # a fusion's stand-in for an absent modality; VQA has both, always
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
