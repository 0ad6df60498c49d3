"""The exporter choice: fallback on failure and on parity failure, recorded per graph;
the model-code changes that make the exporters see real shapes keep PyTorch's outputs;
and the dynamo exporter's own path (slow on a loaded CPU: PLAIT_EXPORT_DYNAMO=1)."""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest
import torch

import plait
from plait.config import EncoderConfig
from plait.encoders.audio import pad_frames
from plait.encoders.text import TextGRUEncoder, TextTransformerEncoder
from plait.export import exporters
from plait.export.attention import _ORIGINAL, traceable_attention


def test_auto_falls_back_when_the_first_exporter_fails(
    untrained, export_data, tmp_path, monkeypatch
):
    def broken(*_args):
        raise RuntimeError("cannot trace this")

    real = exporters.export_legacy
    monkeypatch.setitem(exporters.EXPORTERS, "legacy", broken)
    monkeypatch.setitem(exporters.EXPORTERS, "dynamo", real)  # stands in: fast
    model = untrained(tmp_path / "model")
    result = plait.export(model, tmp_path / "onnx", data=export_data / "test.csv")
    (graph,) = result.graphs
    assert graph.exporter == "dynamo"
    assert graph.attempts[0] == {
        "exporter": "legacy",
        "ok": False,
        "error": "RuntimeError: cannot trace this",
    }
    record = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert record["graphs"]["model"]["exporter"] == "dynamo"
    assert record["graphs"]["model"]["attempts"][1] == {"exporter": "dynamo", "ok": True}


def test_unknown_exporter_is_refused(untrained, tmp_path):
    with pytest.raises(plait.PlaitError, match="unknown exporter 'onnxmltools'"):
        plait.export(untrained(tmp_path / "model"), tmp_path / "onnx", exporter="onnxmltools")


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_gru_export_path_matches_packed_sequences(layers: int, pooling: str):
    torch.manual_seed(0)
    config = EncoderConfig(type="text_gru", dim=7, layers=layers, pooling=pooling)
    encoder = TextGRUEncoder(config, vocab_size=30, max_length=12).eval()
    mask = torch.ones(4, 9, dtype=torch.long)
    mask[1, 3:], mask[2, :], mask[3, 8:] = 0, 0, 0
    ids = torch.randint(2, 30, (4, 9)) * mask
    packed = encoder(ids, mask)
    with mock.patch("torch.compiler.is_exporting", return_value=True):
        unpacked = encoder(ids, mask)
    real = mask.bool().unsqueeze(-1)
    assert torch.allclose(packed.sequence * real, unpacked.sequence * real, atol=1e-6)
    assert torch.allclose(packed.pooled, unpacked.pooled, atol=1e-6)


def test_traceable_attention_computes_what_multihead_attention_does():
    torch.manual_seed(0)
    config = EncoderConfig(type="text_transformer", dim=8, layers=2, heads=2)
    encoder = TextTransformerEncoder(config, vocab_size=30, max_length=16).eval()
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 2:], mask[2, :] = 0, 0
    ids = torch.randint(2, 30, (3, 7)) * mask
    expected = encoder(ids, mask).pooled
    with traceable_attention():
        got = encoder(ids, mask).pooled
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.nn.MultiheadAttention.forward is _ORIGINAL  # restored on exit


def test_pad_frames_pads_short_clips_only():
    short, long = torch.randn(2, 1, 4, 3), torch.randn(2, 1, 4, 9)
    assert torch.equal(pad_frames(long, 8), long)
    padded = pad_frames(short, 8)
    assert padded.shape[-1] == 8
    assert torch.equal(padded[..., :3], short) and not padded[..., 3:].any()


@pytest.mark.skipif(
    os.environ.get("PLAIT_EXPORT_DYNAMO") != "1",
    reason="torch.export takes minutes on a loaded 2-core machine; PLAIT_EXPORT_DYNAMO=1 runs it",
)
def test_dynamo_exports_gru_lenet_and_transformer_with_parity(untrained, export_data, tmp_path):
    def configure(raw: dict) -> dict:
        modalities = raw["modalities"]
        modalities["caption"]["encoder"] = {"type": "text_gru", "dim": 8, "layers": 2}
        modalities["audio"]["encoder"] = {"type": "audio_lenet", "dim": 8}
        modalities["image"]["encoder"] = {"type": "image_cnn", "dim": 8, "layers": 1}
        raw["fusion"] = {"method": "cross_attention", "dim": 8, "heads": 2}
        return raw

    model = untrained(tmp_path / "model", configure)
    result = plait.export(
        model, tmp_path / "onnx", data=export_data / "test.csv", exporter="dynamo"
    )
    (graph,) = result.graphs
    assert graph.exporter == "dynamo" and all(case.ok for case in graph.parity)
