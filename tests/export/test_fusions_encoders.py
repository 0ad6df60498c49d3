"""Every fusion of `plait.fusion.FUSIONS` with every scratch encoder, exported with parity.

One tiny model per fusion holds eight modalities, one per scratch encoder (three text
columns, two image, three audio), so eight exports cover every fusion x encoder pair.
All go through the TorchScript exporter here, multi-head attention included
(`plait.export.attention`); the dynamo path is tested in test_exporters.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import plait
from plait.config import ENCODER_KINDS, FUSION_OPTIONS
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
    encoders = FAST | TRANSFORMERS
    base = tiny_config(tmp_path)["modalities"]
    wanted = {"dim": 8, "heads": 2, "layers": 1, "tensor_dim": 2, "rank": 2}
    options = {"method": fusion} | {
        k: v for k, v in wanted.items() if k in FUSION_OPTIONS[fusion].model_fields
    }
    model = untrained(tmp_path / "model", modalities=_modalities(encoders, base), fusion=options)
    out = tmp_path / "onnx"
    result = plait.export(model, out, data=export_data / "test.csv")
    (graph,) = result.graphs
    assert all(case.ok for case in graph.parity)
    cases = {case.case for case in graph.parity}
    assert {f"batch 16, no {name}" for name in encoders} <= cases
    assert any(case.startswith("2 frames") for case in cases)  # LeNet audio pads to more
    assert any("tokens " in case for case in cases)
    assert graph.exporter == "legacy", graph.attempts
