"""Contract tests for every fusion in FUSIONS, plus method-specific checks.

Every contract test is parametrized over `FUSIONS` itself, so a new row is tested for free.
"""

from __future__ import annotations

import pytest
import torch

from plait.config import FUSION_OPTIONS, FusionConfig, FusionOptions, PlaitConfig
from plait.encoders.base import EncoderOutput
from plait.errors import ConfigError
from plait.fusion import FUSIONS, LateFusion, LowRankFusion, TensorFusion, build_fusion

B = 4
NUM_OUTPUTS = 3
# name -> (width D, sequence length T): all different on purpose.
SHAPES = {"text": (6, 5), "image": (10, 3), "audio": (4, 7)}
METHODS = sorted(FUSIONS)
COUNTS = [1, 2, 3]


def make_config(method: str, dropout: float = 0.1) -> FusionConfig:
    return FusionConfig(
        method=method, dim=8, dropout=dropout, heads=2, layers=2, rank=3, tensor_dim=3
    )


def make_fusion(method: str, n: int, seed: int = 0, dropout: float = 0.1):
    torch.manual_seed(seed)
    dims = {m: d for m, (d, _) in list(SHAPES.items())[:n]}
    return build_fusion(dims, make_config(method, dropout), NUM_OUTPUTS)


def make_features(n: int, seed: int = 1) -> dict[str, EncoderOutput]:
    gen = torch.Generator().manual_seed(seed)
    features = {}
    for name, (d, t) in list(SHAPES.items())[:n]:
        lengths = torch.randint(1, t + 1, (B,), generator=gen)
        lengths[0] = t  # at least one full row
        mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
        sequence = torch.randn(B, t, d, generator=gen)
        pooled = torch.randn(B, d, generator=gen)
        features[name] = EncoderOutput(sequence=sequence, pooled=pooled, mask=mask)
    return features


def all_present(n: int) -> dict[str, torch.Tensor]:
    return {m: torch.ones(B, dtype=torch.bool) for m in list(SHAPES)[:n]}


def ragged_presence(n: int) -> dict[str, torch.Tensor]:
    """Sample 0: all present; 1: first missing; 2: last missing; 3: nothing present."""
    presence = all_present(n)
    names = list(presence)
    presence[names[0]][1] = False
    presence[names[-1]][2] = False
    for name in names:
        presence[name][3] = False
    return presence


def expected_dim(fusion) -> int:
    return NUM_OUTPUTS if fusion.produces_logits else 8


def perturbed(out: EncoderOutput, scale: float = 5.0) -> EncoderOutput:
    return EncoderOutput(
        sequence=out.sequence + scale * torch.randn_like(out.sequence),
        pooled=out.pooled + scale * torch.randn_like(out.pooled),
        mask=out.mask,
    )


def test_registry_matches_config_methods():
    # the names the config accepts are exactly the rows of FUSIONS
    assert set(FUSIONS) == set(FUSION_OPTIONS)


@pytest.mark.parametrize("method", METHODS)
def test_each_fusion_declares_its_options_model(method: str):
    assert FUSIONS[method].Options is FUSION_OPTIONS[method]
    assert issubclass(FUSIONS[method].Options, FusionOptions)
    fusion = make_fusion(method, 2)
    assert type(fusion.options) is FUSION_OPTIONS[method]
    # a fusion gets only the keys its own options model declares
    assert set(fusion.options.model_dump()) == set(FUSION_OPTIONS[method].model_fields)
    # every flat key of the YAML block is an option of some fusion (or the model's)
    declared = {key for model in FUSION_OPTIONS.values() for key in model.model_fields}
    assert set(FusionConfig.model_fields) == declared | {"method", "modality_dropout"}


def _raw_config(**fusion):
    return {
        "data": {"train": "train.csv", "label": "y"},
        "modalities": {"a": {"kind": "text", "column": "t"}, "b": {"kind": "image", "column": "p"}},
        "fusion": fusion,
    }


def test_an_option_the_fusion_does_not_read_is_named_in_a_warning():
    with pytest.warns(
        UserWarning, match=r"^my.yaml: `fusion.rank: 8` is not read by fusion `gated`"
    ):
        PlaitConfig.from_dict(_raw_config(method="gated", rank=8), source="my.yaml")
    with pytest.warns(UserWarning, match=r"`fusion.heads: 2` .* `tensor`"):
        PlaitConfig.from_dict(_raw_config(method="tensor", heads=2, tensor_dim=4))


def test_an_aligned_run_checks_the_options_of_its_itm_fusion():
    raw = _raw_config(method="concat", heads=2, layers=2, rank=8)
    raw["alignment"] = {"objectives": [{"name": "clip"}, {"name": "itm"}]}
    with pytest.warns(UserWarning) as caught:
        PlaitConfig.from_dict(raw)
    lines = [str(w.message) for w in caught if "fusion." in str(w.message)]
    assert (
        len(lines) == 1 and "`fusion.rank: 8` is not read by fusion `cross_attention`" in lines[0]
    )


def test_used_or_default_options_draw_no_warning(recwarn):
    # a saved config carries every key at its default: that loads silently
    PlaitConfig.from_dict(_raw_config(**FusionConfig(method="sum").model_dump()))
    PlaitConfig.from_dict(_raw_config(method="low_rank", rank=8, tensor_dim=4, dim=16))
    PlaitConfig.from_dict(_raw_config(method="cross_attention", heads=2, layers=3))
    assert [str(w.message) for w in recwarn if "fusion." in str(w.message)] == []


def test_unknown_method_in_yaml_names_the_key_and_the_closest():
    with pytest.raises(ConfigError, match=r"`fusion.method`: `low_rnk` .*Did you mean `low_rank`"):
        PlaitConfig.from_dict(_raw_config(method="low_rnk"))


def test_unknown_method_names_valid_ones():
    config = FusionConfig.model_construct(**{**make_config("sum").model_dump(), "method": "nope"})
    with pytest.raises(ValueError, match="concat.*cross_attention"):
        build_fusion({"text": 4}, config, NUM_OUTPUTS)


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("method", METHODS)
def test_shape_finite_and_gradient_coverage(method: str, n: int):
    fusion = make_fusion(method, n).train()
    assert isinstance(fusion, FUSIONS[method])
    assert fusion.output_dim == expected_dim(fusion)
    out = fusion(make_features(n), all_present(n))
    assert out.shape == (B, fusion.output_dim)
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    for name, param in fusion.named_parameters():
        if "missing" in name:  # concat's stand-ins are unused when everything is present
            continue
        assert param.grad is not None, f"{method}: {name} got no gradient"
        assert torch.isfinite(param.grad).all(), name
        # With one modality a softmax over modalities is constant, so its grad is 0.
        if n > 1:
            assert param.grad.abs().sum() > 0, f"{method}: {name} got a zero gradient"


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("method", METHODS)
def test_missing_modalities_stay_finite(method: str, n: int):
    fusion = make_fusion(method, n).train()
    out = fusion(make_features(n), ragged_presence(n))
    assert out.shape == (B, fusion.output_dim)
    assert torch.isfinite(out).all()
    out.sum().backward()
    for name, param in fusion.named_parameters():
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), f"{method}: NaN grad in {name}"


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("method", METHODS)
def test_missing_modality_input_is_ignored(method: str, n: int):
    fusion = make_fusion(method, n).eval()
    features = make_features(n)
    presence = all_present(n)
    first = next(iter(presence))
    presence[first][1] = False
    presence[first][3] = False
    with torch.no_grad():
        before = fusion(features, presence)
        changed = dict(features, **{first: perturbed(features[first])})
        changed[first].sequence[1, 0] = float("nan")  # placeholders may even hold NaN
        changed[first].pooled[3] = float("nan")
        after = fusion(changed, presence)
    assert torch.isfinite(after).all()
    missing = ~presence[first]
    torch.testing.assert_close(after[missing], before[missing])
    # ...while the same change does move the samples where it is present.
    assert not torch.allclose(after[~missing], before[~missing])


@pytest.mark.parametrize("method", METHODS)
def test_padding_positions_are_ignored(method: str):
    fusion = make_fusion(method, 2).eval()
    features = make_features(2)
    with torch.no_grad():
        before = fusion(features, all_present(2))
        for out in features.values():
            out.sequence[~out.mask] = 1e3
        after = fusion(features, all_present(2))
    torch.testing.assert_close(after, before)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("method", METHODS)
def test_state_dict_round_trip(method: str, n: int, tmp_path):
    source = make_fusion(method, n, seed=0).eval()
    target = make_fusion(method, n, seed=123).eval()
    features, presence = make_features(n), ragged_presence(n)
    with torch.no_grad():
        assert not torch.allclose(target(features, presence), source(features, presence))
    torch.save(source.state_dict(), tmp_path / "fusion.pt")
    target.load_state_dict(torch.load(tmp_path / "fusion.pt", weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(target(features, presence), source(features, presence))


@pytest.mark.parametrize("method", [m for m in METHODS if m != "late"])
def test_dropout_applies_to_the_output(method: str):
    fusion = make_fusion(method, 2, dropout=0.5).train()
    features, presence = make_features(2), all_present(2)
    torch.manual_seed(0)
    outs = [fusion(features, presence) for _ in range(3)]
    assert not all(torch.equal(outs[0], o) for o in outs[1:])
    fusion.eval()
    torch.testing.assert_close(fusion(features, presence), fusion(features, presence))


def test_concat_missing_embedding_is_learned():
    fusion = make_fusion("concat", 2)
    fusion(make_features(2), ragged_presence(2)).sum().backward()
    for name, param in fusion.named_parameters():
        if "missing" in name:
            assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_cross_attention_rejects_heads_not_dividing_dim():
    config = make_config("cross_attention").model_copy(update={"heads": 3})
    with pytest.raises(ValueError, match="divisible"):
        build_fusion({"text": 4, "image": 5}, config, NUM_OUTPUTS)


def test_low_rank_factors_are_registered_and_trained():
    fusion = make_fusion("low_rank", 3)
    assert isinstance(fusion, LowRankFusion)
    params = dict(fusion.named_parameters())
    assert len(fusion.factors) == 3
    for i, factor in enumerate(fusion.factors):
        assert params[f"factors.{i}"] is factor
        assert factor.shape == (3, 3 + 1, 8)  # [rank, tensor_dim + 1, dim]
    assert "fusion_weights" in params and "fusion_bias" in params
    fusion(make_features(3), all_present(3)).pow(2).sum().backward()
    for i, factor in enumerate(fusion.factors):
        assert factor.grad is not None and factor.grad.abs().sum() > 0, f"factor {i}"
    # An optimiser built from parameters() really updates the factors.
    before = [f.detach().clone() for f in fusion.factors]
    torch.optim.SGD(fusion.parameters(), lr=0.1).step()
    assert all(not torch.equal(b, f) for b, f in zip(before, fusion.factors, strict=True))


@pytest.mark.parametrize("n", COUNTS)
def test_tensor_fusion_is_the_outer_product(n: int):
    fusion = make_fusion("tensor", n)
    assert isinstance(fusion, TensorFusion)
    assert fusion.out.in_features == (3 + 1) ** n  # (tensor_dim + 1) ** M
    features, presence = make_features(n), ragged_presence(n)
    vectors = fusion.modality_vectors(features, presence)  # each [B, 4]
    fused = fusion.fused_tensor(features, presence).view(B, *[4] * n)
    expected = vectors[0]
    for z in vectors[1:]:
        expected = expected.unsqueeze(-1) * z.view(B, *[1] * (expected.dim() - 1), 4)
    torch.testing.assert_close(fused, expected)
    for z in vectors:
        assert torch.equal(z[:, -1], torch.ones(B))  # the constant 1 is always kept
    # Sample 1 misses the first modality: every term involving it is zero...
    torch.testing.assert_close(fused[1, :-1], torch.zeros_like(fused[1, :-1]))
    if n >= 2:
        # ...while the second modality's unimodal terms (z_b[j] * 1 * 1) survive.
        unimodal = (1, 3, slice(None)) + (3,) * (n - 2)
        torch.testing.assert_close(fused[unimodal], vectors[1][1])
        # Bimodal products z_a[i] * z_b[j] are present, not just the unimodal terms.
        pair = (0, 0, 1) + (3,) * (n - 2)
        torch.testing.assert_close(fused[pair], vectors[0][0, 0] * vectors[1][0, 1])


def test_late_fusion_averages_present_heads():
    fusion = make_fusion("late", 2).eval()
    assert isinstance(fusion, LateFusion) and fusion.produces_logits
    features, presence = make_features(2), ragged_presence(2)
    with torch.no_grad():
        out = fusion(features, presence)
        text = fusion.heads[0](features["text"].pooled)
        image = fusion.heads[1](features["image"].pooled)
    torch.testing.assert_close(out[0], (text[0] + image[0]) / 2)  # zero-init log weights
    torch.testing.assert_close(out[1], image[1])  # text missing
    torch.testing.assert_close(out[2], text[2])  # image missing
    torch.testing.assert_close(out[3], torch.zeros(NUM_OUTPUTS))  # nothing present
