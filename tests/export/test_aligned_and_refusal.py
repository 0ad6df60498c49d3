"""Aligned towers export one graph each; a graph that disagrees with PyTorch is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import numpy_helper

import plait
from plait.errors import PlaitError
from plait.export import OnnxAlignedPredictor, Tolerance
from plait.export import exporters as exporters_module


def _aligned(raw: dict) -> dict:
    del raw["modalities"]["audio"]
    del raw["head"]
    raw["alignment"] = {"dim": 8, "objectives": [{"name": "clip"}]}
    for modality in raw["modalities"].values():
        modality["encoder"]["dim"] = 8
    return raw


@pytest.fixture(scope="module")
def aligned_export(untrained, tmp_path_factory: pytest.TempPathFactory, export_data: Path):
    root = tmp_path_factory.mktemp("aligned")
    model = untrained(root / "model", _aligned)
    out = root / "onnx"
    plait.export(model, out, data=export_data / "test.csv")
    return model, out


def test_each_tower_is_its_own_graph_with_the_logit_scale(aligned_export):
    model, out = aligned_export
    record = json.loads((out / "export.json").read_text())
    assert record["pair"] == ["caption", "image"]
    assert set(record["graphs"]) == {"tower caption", "tower image"}
    assert (out / "tower_caption.onnx").is_file() and (out / "tower_image.onnx").is_file()
    assert record["logit_scale"] == pytest.approx(np.log(1 / 0.07), rel=1e-5)
    text = record["graphs"]["tower caption"]
    assert [i["name"] for i in text["inputs"]] == ["caption.input_ids", "caption.attention_mask"]
    assert text["inputs"][0]["dynamic_axes"] == {"0": "batch", "1": "caption_tokens"}
    for graph in record["graphs"].values():
        assert all(c["ok"] and c["min_cosine"] >= 0.9999 for c in graph["parity"])


def test_onnx_towers_embed_score_and_classify_like_pytorch(aligned_export, export_data):
    model, out = aligned_export
    onnx_model, torch_model = plait.load(out), plait.load(model)
    assert isinstance(onnx_model, OnnxAlignedPredictor)
    table = export_data / "test.csv"
    for name in ("caption", "image"):
        ids, vectors = onnx_model.embed(table, name)
        ref_ids, reference = torch_model.embed(table, name)
        assert ids == ref_ids and np.allclose(vectors, reference, atol=1e-5)
    texts = ["a red circle", "a blue square"]
    image = pd.read_csv(table)["image"].dropna().iloc[0]
    pd.testing.assert_frame_equal(
        onnx_model.similarity(image=[image], text=texts),
        torch_model.similarity(image=[image], text=texts),
        atol=1e-5,
    )
    classes = sorted(set(pd.read_csv(table)["label"]))
    got = onnx_model.zeroshot(table, classes, templates=["a {} thing"])
    expected = torch_model.zeroshot(table, classes, templates=["a {} thing"])
    pd.testing.assert_frame_equal(got.predictions, expected.predictions, atol=1e-5)
    got_eval, expected_eval = onnx_model.evaluate(table), torch_model.evaluate(table)
    assert got_eval["pairs"] == expected_eval["pairs"] > 0
    assert json.dumps(got_eval["retrieval"], sort_keys=True) == json.dumps(
        expected_eval["retrieval"], sort_keys=True
    )
    assert got.metrics is not None and expected.metrics is not None
    assert got.metrics["accuracy"] == pytest.approx(expected.metrics["accuracy"])


def _perturbed(real):
    """An exporter whose graph has its largest weight changed by 1 per value."""

    def export(graph, spec, sample, path):
        real(graph, spec, sample, path)
        proto = onnx.load(str(path))
        biggest = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
        values = numpy_helper.to_array(biggest).copy()
        biggest.CopyFrom(numpy_helper.from_array(values + 1.0, biggest.name))
        onnx.save(proto, str(path))

    return export


def test_a_graph_that_disagrees_with_pytorch_is_refused(
    untrained, export_data, tmp_path, monkeypatch
):
    model = untrained(tmp_path / "model")
    monkeypatch.setitem(
        exporters_module.EXPORTERS, "legacy", _perturbed(exporters_module.export_legacy)
    )
    out = tmp_path / "onnx"
    with pytest.raises(PlaitError, match=r"cannot export model to ONNX.*legacy: parity failed"):
        plait.export(model, out, data=export_data / "test.csv", exporter="legacy")
    assert not out.exists()  # nothing half-written
    # a looser tolerance is the user's call, and is recorded
    loose = Tolerance(max_abs=1e9, min_cosine=-1.0)
    plait.export(model, out, data=export_data / "test.csv", exporter="legacy", tolerance=loose)
    record = json.loads((out / "export.json").read_text())
    assert record["parity"]["tolerance"]["max_abs"] == 1e9
    assert max(c["max_abs"] for c in record["graphs"]["model"]["parity"]) > 1e-3


def test_a_changed_export_file_is_refused_on_load(aligned_export, tmp_path):
    import shutil

    _, out = aligned_export
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with open(copy / "tower_image.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(PlaitError, match="tower_image.onnx changed since it was exported"):
        plait.load(copy)


def test_an_unavailable_provider_is_an_error_not_a_fallback(aligned_export):
    from plait.export import load_export

    _, out = aligned_export
    with pytest.raises(PlaitError, match="TensorrtExecutionProvider is not available"):
        load_export(out, providers=["TensorrtExecutionProvider"])
