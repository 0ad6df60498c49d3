"""Contract tests for every head: each row of HEADS, the projection head, the matching
(ITM) head and the masked-LM head. Shapes, backward, and a state_dict round trip through
safetensors (the format of `model.safetensors`) that gives the same outputs.

The HEADS tests are parametrized over the table itself, so a new row is tested for free.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from plait.config import FusionConfig, HeadConfig
from plait.encoders.base import EncoderOutput
from plait.fusion import build_fusion
from plait.heads import HEADS, build_head
from plait.heads.masked_lm import MaskedLMHead, attention_heads
from plait.heads.matching import MatchingHead
from plait.heads.projection import Projection
from plait.objectives.masked_lm import IGNORE, masked_lm_loss

B, D, K = 4, 12, 5
TASKS = sorted(HEADS)


def assert_every_parameter_learns(module: nn.Module, skip: Callable[[str], bool] = lambda n: False):
    for name, param in module.named_parameters():
        if skip(name):
            continue
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name} got a zero gradient"


def assert_round_trip(
    make: Callable[[int], nn.Module], run: Callable[[nn.Module], Tensor], folder: Path
) -> None:
    """Weights saved from one seed and loaded into another give the same outputs."""
    source, target = make(0).eval(), make(1).eval()
    with torch.no_grad():
        assert not torch.allclose(run(source), run(target)), "seeds should differ"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, folder / "head.safetensors")
    target.load_state_dict(load_file(folder / "head.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(run(target), run(source))


# ----------------------------------------------------------------------- HEADS rows


def make_head(task: str, hidden: int, seed: int = 0, dropout: float = 0.1) -> nn.Module:
    torch.manual_seed(seed)
    return build_head(D, K, HeadConfig(task=task, hidden=hidden, dropout=dropout))


def test_heads_cover_every_task_the_config_accepts():
    tasks = typing.get_args(HeadConfig.model_fields["task"].annotation)
    assert set(HEADS) == set(tasks)


def test_unknown_task_names_valid_ones():
    config = HeadConfig.model_construct(**{**HeadConfig().model_dump(), "task": "ranking"})
    with pytest.raises(ValueError, match="unknown task `ranking`.*classification"):
        build_head(D, K, config)


@pytest.mark.parametrize("hidden", [0, 16])
@pytest.mark.parametrize("task", TASKS)
def test_head_shapes_and_backward(task: str, hidden: int):
    head = make_head(task, hidden).train()
    assert isinstance(head, HEADS[task])
    out = head(torch.randn(B, D))
    assert out.shape == (B, K) and torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    assert_every_parameter_learns(head)
    linear = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert len(linear) == (2 if hidden else 1)


@pytest.mark.parametrize("task", TASKS)
def test_head_dropout_only_in_training(task: str):
    head, fused = make_head(task, 16, dropout=0.5), torch.randn(B, D)
    torch.manual_seed(0)
    outs = [head.train()(fused) for _ in range(3)]
    assert not all(torch.equal(outs[0], o) for o in outs[1:])
    head.eval()
    torch.testing.assert_close(head(fused), head(fused))


@pytest.mark.parametrize("hidden", [0, 16])
@pytest.mark.parametrize("task", TASKS)
def test_head_state_dict_round_trip(task: str, hidden: int, tmp_path: Path):
    fused = torch.randn(B, D)
    assert_round_trip(lambda seed: make_head(task, hidden, seed), lambda m: m(fused), tmp_path)


# ------------------------------------------------------------------ projection head


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_projection_shapes_backward_round_trip(kind: str, tmp_path: Path):
    def make(seed: int) -> Projection:
        torch.manual_seed(seed)
        return Projection(D, 7, kind)  # type: ignore[arg-type]

    pooled = torch.randn(B, D)
    projection = make(0)
    out = projection(pooled)
    assert out.shape == (B, 7) and torch.isfinite(out).all()
    out.square().sum().backward()
    assert_every_parameter_learns(projection)
    if kind == "linear":  # CLIP's projection: no bias, so it is a pure change of basis
        assert [n for n, _ in projection.named_parameters()] == ["net.weight"]
    else:
        assert len([m for m in projection.modules() if isinstance(m, nn.Linear)]) == 2
    assert_round_trip(make, lambda m: m(pooled), tmp_path)


# -------------------------------------------------------------------- matching head

SEQ = {"text": (6, 5), "image": (10, 3)}  # name -> (width, length)


def pair_features(seed: int = 1) -> dict[str, EncoderOutput]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, (width, length) in SEQ.items():
        mask = torch.ones(B, length, dtype=torch.bool)
        mask[1, length // 2 :] = False
        out[name] = EncoderOutput(
            sequence=torch.randn(B, length, width, generator=gen),
            pooled=torch.randn(B, width, generator=gen),
            mask=mask,
        )
    return out


def make_matcher(seed: int) -> MatchingHead:
    torch.manual_seed(seed)
    config = FusionConfig(method="cross_attention", dim=8, heads=2, layers=1, dropout=0.0)
    return MatchingHead(build_fusion({n: w for n, (w, _) in SEQ.items()}, config, 2))


def test_matching_head_shapes_backward_round_trip(tmp_path: Path):
    features = pair_features()
    presence = {name: torch.ones(B, dtype=torch.bool) for name in SEQ}
    matcher = make_matcher(0).train()
    logits = matcher(features, presence)
    assert logits.shape == (B, 2) and torch.isfinite(logits).all()
    (logits * torch.randn_like(logits)).sum().backward()
    assert_every_parameter_learns(matcher)
    assert_round_trip(make_matcher, lambda m: m(features, presence), tmp_path)


def test_matching_head_ignores_padding_and_missing_rows():
    matcher = make_matcher(0).eval()
    features = pair_features()
    presence = {name: torch.ones(B, dtype=torch.bool) for name in SEQ}
    presence["image"][2] = False
    with torch.no_grad():
        before = matcher(features, presence)
        for out in features.values():
            out.sequence[~out.mask] = 1e3  # garbage under the padding mask
        features["image"].sequence[2] = float("nan")  # a missing sample's placeholder
        after = matcher(features, presence)
    assert torch.isfinite(after).all()
    torch.testing.assert_close(after, before)


# ------------------------------------------------------------------- masked-LM head

T, S, VOCAB, DT, DC = 6, 4, 11, 8, 10


def make_decoder(seed: int, layers: int = 1) -> MaskedLMHead:
    torch.manual_seed(seed)
    return MaskedLMHead(DT, DC, VOCAB, layers=layers, heads=4, dropout=0.0)


def lm_inputs(seed: int = 2) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    text, context = torch.randn(B, T, DT, generator=gen), torch.randn(B, S, DC, generator=gen)
    text_mask, context_mask = torch.ones(B, T, dtype=torch.bool), torch.ones(B, S, dtype=torch.bool)
    text_mask[1, 4:] = False
    context_mask[2, 2:] = False
    return text, text_mask, context, context_mask


@pytest.mark.parametrize("layers", [1, 2])
def test_masked_lm_head_shapes_backward_round_trip(layers: int, tmp_path: Path):
    inputs = lm_inputs()
    decoder = make_decoder(0, layers).train()
    logits = decoder(*inputs)
    assert logits.shape == (B, T, VOCAB) and torch.isfinite(logits).all()
    (logits * torch.randn_like(logits)).sum().backward()
    assert_every_parameter_learns(decoder)
    assert len(decoder.decoder.layers) == layers
    assert_round_trip(lambda seed: make_decoder(seed, layers), lambda m: m(*inputs), tmp_path)


def test_masked_lm_head_ignores_padded_context_and_text():
    decoder = make_decoder(0).eval()
    text, text_mask, context, context_mask = lm_inputs()
    with torch.no_grad():
        before = decoder(text, text_mask, context, context_mask)
        context = context.masked_fill(~context_mask.unsqueeze(-1), 1e3)
        text = text.masked_fill(~text_mask.unsqueeze(-1), 1e3)
        after = decoder(text, text_mask, context, context_mask)
    # every real token's prediction is unchanged by what sits under either padding mask
    torch.testing.assert_close(after[text_mask], before[text_mask])


def test_masked_lm_head_scores_only_the_chosen_positions_and_the_loss_is_the_same():
    """`positions` projects just the masked tokens onto the vocabulary: the same logits
    there, the same loss, a fraction of the cost."""
    decoder = make_decoder(0).eval()
    inputs = lm_inputs()
    targets = torch.full((B, T), IGNORE)
    targets[0, 1], targets[1, 3], targets[2, 0] = 4, 7, 1
    chosen = targets != IGNORE
    with torch.no_grad():
        every = decoder(*inputs)
        some = decoder(*inputs, chosen)
    assert some.shape == (3, VOCAB)
    torch.testing.assert_close(some, every[chosen])
    torch.testing.assert_close(
        masked_lm_loss(some, targets[chosen]), masked_lm_loss(every, targets)
    )


def test_masked_lm_head_reads_the_context():
    decoder = make_decoder(0).eval()
    text, text_mask, context, context_mask = lm_inputs()
    with torch.no_grad():
        before = decoder(text, text_mask, context, context_mask)
        after = decoder(text, text_mask, context + 1.0, context_mask)
    assert not torch.allclose(after, before)


@pytest.mark.parametrize(
    ("dim", "wanted", "expected"), [(8, 4, 4), (10, 4, 2), (7, 4, 1), (3, 8, 3)]
)
def test_attention_heads_divide_the_width(dim: int, wanted: int, expected: int):
    assert attention_heads(dim, wanted) == expected
