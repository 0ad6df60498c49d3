"""MultimodalModel wiring and modality dropout."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from plait.config import FusionConfig, HeadConfig
from plait.encoders.base import EncoderOutput
from plait.fusion import build_fusion
from plait.heads import build_head
from plait.model import MultimodalModel, drop_modalities

NAMES = ("text", "image", "audio")


class TinyEncoder(nn.Module):
    """x [B, 3] -> a one-position sequence of width `output_dim`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.output_dim = dim
        self.proj = nn.Linear(3, dim)

    def forward(self, x: Tensor) -> EncoderOutput:
        pooled = self.proj(x)  # [B, D]
        mask = torch.ones(len(x), 1, dtype=torch.bool)
        return EncoderOutput(pooled.unsqueeze(1), pooled, mask)


def make_model(method: str = "concat", modality_dropout: float = 0.0, outputs: int = 4):
    torch.manual_seed(0)
    encoders = {name: TinyEncoder(4 + i) for i, name in enumerate(NAMES)}
    fusion_config = FusionConfig(method=method, dim=8, dropout=0.0)
    fusion = build_fusion({n: e.output_dim for n, e in encoders.items()}, fusion_config, outputs)
    head = build_head(fusion.output_dim, outputs, HeadConfig(hidden=8, dropout=0.0))
    return MultimodalModel(encoders, fusion, head, modality_dropout)


def make_batch(size: int = 64, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    inputs = {name: {"x": torch.randn(size, 3, generator=gen)} for name in NAMES}
    presence = {name: torch.ones(size, dtype=torch.bool) for name in NAMES}
    return inputs, presence


def random_presence(size: int, seed: int) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    present = torch.rand(size, len(NAMES), generator=gen) < 0.7
    present[:10] = True  # some complete rows
    present[10:15] = False  # some empty rows
    present[15:20] = torch.tensor([True, False, False])  # some with one modality only
    return {name: present[:, i] for i, name in enumerate(NAMES)}


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_drop_modalities_keeps_one_never_resurrects_and_hides_about_rate(rate: float):
    torch.manual_seed(0)
    presence = random_presence(20_000, seed=3)
    dropped = drop_modalities(presence, rate)

    before = torch.stack([presence[n] for n in NAMES], 1)
    after = torch.stack([dropped[n] for n in NAMES], 1)
    assert list(dropped) == list(NAMES)
    assert after.dtype == torch.bool and after.shape == before.shape
    # never resurrects an absent modality
    assert not (after & ~before).any()
    # never hides every present modality of a sample; empty samples stay empty
    assert torch.equal(after.any(1), before.any(1))
    # a sample with a single modality keeps it
    single = before.sum(1) == 1
    assert torch.equal(after[single], before[single])
    # each present modality is hidden with chance `rate`, except that a sample which lost
    # all k of them gets one back: expected hidden per sample k * rate - rate ** k
    counts = before.sum(1).double()
    hidden = (before & ~after).sum().item() / counts.sum().item()
    expected = (counts * rate - rate**counts).clamp_min(0).sum().item() / counts.sum().item()
    assert hidden == pytest.approx(expected, abs=0.015)
    assert hidden <= rate


def test_drop_modalities_zero_rate_is_identity():
    presence = random_presence(500, seed=4)
    dropped = drop_modalities(presence, 0.0)
    for name in NAMES:
        assert torch.equal(dropped[name], presence[name])


def test_late_fusion_uses_identity_head_and_outputs_logits():
    model = make_model("late", outputs=5)
    assert isinstance(model.head, nn.Identity)
    assert sum(p.numel() for p in model.head.parameters()) == 0
    inputs, presence = make_batch(8)
    out = model.eval()(inputs, presence)
    assert out.shape == (8, 5)
    # other fusions keep the MLP head
    concat = make_model("concat", outputs=5)
    assert not isinstance(concat.head, nn.Identity)
    assert concat.eval()(inputs, presence).shape == (8, 5)


def test_modality_dropout_only_in_training():
    model = make_model("concat", modality_dropout=0.5)
    plain = make_model("concat", modality_dropout=0.0)
    plain.load_state_dict(model.state_dict())
    inputs, presence = make_batch(64)

    model.eval()
    plain.eval()
    torch.manual_seed(1)
    first = model(inputs, presence)
    torch.manual_seed(2)
    second = model(inputs, presence)
    assert torch.equal(first, second)  # deterministic in eval mode
    assert torch.allclose(first, plain(inputs, presence))  # and no modality is hidden

    model.train()
    plain.train()  # no dropout anywhere else: its training output is deterministic
    torch.manual_seed(1)
    a = model(inputs, presence)
    torch.manual_seed(2)
    b = model(inputs, presence)
    assert not torch.allclose(a, b)  # modalities are hidden at random in training
    assert torch.allclose(plain(inputs, presence), plain(inputs, presence))
    torch.manual_seed(1)
    assert torch.equal(a, model(inputs, presence))  # ... from the global torch generator


def test_presence_is_respected_in_eval():
    model = make_model("concat").eval()
    inputs, presence = make_batch(4)
    presence["audio"] = torch.tensor([True, False, True, False])
    base = model(inputs, presence)
    changed = {k: dict(v) for k, v in inputs.items()}
    changed["audio"] = {"x": inputs["audio"]["x"] + 100.0}
    out = model(changed, presence)
    # rows without audio ignore its values; rows with audio do not
    assert torch.allclose(out[1], base[1]) and torch.allclose(out[3], base[3])
    assert not torch.allclose(out[0], base[0])
