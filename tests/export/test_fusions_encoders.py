"""Every fusion of `plait.fusion.FUSIONS` with every scratch encoder, exported with parity.

One tiny model per fusion holds several modalities, each with its own encoder, so each
export covers a fusion with many encoders at once (the cheap trick that keeps this
suite fast). The TorchScript exporter handles the CNN, LeNet and GRU encoders in under
a second; the Transformer encoders and cross-attention need the dynamo exporter (tens of
seconds each on a loaded 2-core machine), so they are exported once, under
cross-attention, here, and under every fusion when PLAIT_EXPORT_MATRIX=full is set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import plait
from plait.config import ENCODER_KINDS
from plait.fusion import FUSIONS

FAST = {
    "cnn_text": ("text", "text_cnn"),
    "gru_text": ("text", "text_gru"),
    "cnn_image": ("image", "image_cnn"),
    "lenet_image": ("image", "image_lenet"),
    "cnn_audio": ("audio", "audio_cnn"),
    "lenet_audio": ("audio", "audio_lenet"),
}
TRANSFORMERS = {
    "transformer_text": ("text", "text_transformer"),
    "transformer_audio": ("audio", "audio_transformer"),
}
FULL = os.environ.get("PLAIT_EXPORT_MATRIX") == "full"


def _modalities(encoders: dict[str, tuple[str, str]], base: dict[str, Any]) -> dict[str, Any]:
    source = {"text": base["caption"], "image": base["image"], "audio": base["audio"]}
    out = {}
    for name, (kind, encoder) in encoders.items():
        modality = json.loads(json.dumps(source[kind]))
        modality["encoder"] = {"type": encoder, "dim": 8}
        if encoder in ("text_gru", "image_cnn", "audio_cnn", "text_transformer"):
            modality["encoder"]["layers"] = 2 if encoder == "text_gru" else 1
        if encoder in ("text_transformer", "audio_transformer"):
            modality["encoder"]["heads"] = 2
        out[name] = modality
    return out


def test_the_matrix_names_every_scratch_encoder_and_fusion():
    scratch = {e for e in ENCODER_KINDS if e != "huggingface"}
    assert {e for _, e in (FAST | TRANSFORMERS).values()} == scratch
    assert set(FUSIONS) == {
        "concat",
        "sum",
        "gated",
        "attention",
        "cross_attention",
        "tensor",
        "low_rank",
        "late",
    }


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_fusion_with_scratch_encoders_exports_with_parity(
    fusion: str, untrained, export_data: Path, tmp_path: Path, tiny_config
):
    encoders = dict(FAST)
    if fusion == "cross_attention" or FULL:
        encoders |= TRANSFORMERS
    if fusion == "cross_attention" and not FULL:
        encoders = {"gru_text": FAST["gru_text"]} | TRANSFORMERS
    base = tiny_config(tmp_path)["modalities"]
    options = {"method": fusion, "dim": 8, "heads": 2, "layers": 1, "tensor_dim": 2, "rank": 2}
    model = untrained(tmp_path / "model", modalities=_modalities(encoders, base), fusion=options)
    out = tmp_path / "onnx"
    result = plait.export(
        model,
        out,
        data=export_data / "test.csv",
        exporter=os.environ.get("PLAIT_TEST_EXPORTER", "auto"),
    )
    (graph,) = result.graphs
    assert all(case.ok for case in graph.parity)
    cases = {case.case for case in graph.parity}
    assert {f"batch 16, no {name}" for name in encoders} <= cases
    assert any(case.startswith("frames 2") for case in cases)
    if fusion == "cross_attention" or set(encoders) & set(TRANSFORMERS):
        # multi-head attention: the TorchScript graph freezes its reshapes, dynamo is kept
        assert graph.exporter == "dynamo"
        assert graph.attempts[0]["exporter"] == "legacy" and not graph.attempts[0]["ok"]
    else:
        assert graph.exporter == "legacy", graph.attempts
    predictions = plait.load(out).predict(export_data / "test.csv")
    reference = plait.load(model).predict(export_data / "test.csv")
    assert (predictions["prediction"] == reference["prediction"]).all()
