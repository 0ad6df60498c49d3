"""`plait quantize`: dynamic and static INT8 of a tiny classifier and of aligned towers,
a loadable export folder that records the quantization, and the report of its cost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import plait
from plait.cli import app
from plait.compress.onnx_quant import op_counts
from plait.compress.quantize import quantize, read_report
from plait.errors import PlaitError
from plait.export import export

SAVED_V0 = Path(__file__).parents[1] / "fixtures" / "saved_v0"


@pytest.fixture(scope="module")
def classifier_export(trained: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "classifier"
    export(trained, out)
    return out


@pytest.fixture(scope="module")
def aligned_export(demo_data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "aligned"
    export(SAVED_V0 / "aligned", out, data=demo_data / "test.csv")
    return out


@pytest.mark.parametrize("method", ["dynamic", "static"])
def test_classifier_quantizes_and_the_folder_loads(
    method: str, classifier_export: Path, demo_data: Path, tmp_path: Path
):
    out = tmp_path / "int8"
    result = quantize(classifier_export, method, out=out, repeats=3)
    record = json.loads((out / "export.json").read_text())
    assert record["quantization"]["method"] == method
    assert record["quantization"]["per_channel"] is True
    graph = out / record["graphs"]["model"]["file"]
    ops = op_counts(graph)
    if method == "dynamic":
        assert ops.get("MatMulInteger", 0) > 0
    else:
        assert any(op.startswith("Conv (QDQ)") for op in ops)
        assert record["quantization"]["calibration"]["rows"] == 128
    assert graph.read_bytes() != (classifier_export / graph.name).read_bytes()

    fp32, int8 = plait.load(classifier_export), plait.load(out)
    a = fp32.predict_proba(demo_data / "test.csv").filter(like="proba_").to_numpy()
    b = int8.predict_proba(demo_data / "test.csv").filter(like="proba_").to_numpy()
    assert a.shape == b.shape and np.abs(a - b).max() < 0.05

    runtimes = [(row.graph, row.runtime) for row in result.latency]
    assert runtimes == [("model", "pytorch"), ("model", "onnx fp32"), ("model", "onnx int8")]
    assert all(row.latency_b1_ms > 0 and row.latency_b32_ms > 0 for row in result.latency)
    assert set(result.quality) >= {"accuracy", "f1_macro", "top_class_agreement"}
    assert result.quality["accuracy"]["fp32"] == pytest.approx(
        fp32.evaluate(demo_data / "test.csv")["accuracy"]
    )
    report = read_report(out)
    assert report["method"] == method and report["latency"] and report["quality"]


@pytest.mark.parametrize("method", ["dynamic", "static"])
def test_aligned_towers_quantize_with_cosine_drift_and_recall(
    method: str, aligned_export: Path, demo_data: Path, tmp_path: Path
):
    out = tmp_path / "int8"
    result = quantize(
        aligned_export,
        method,
        out=out,
        calibration=demo_data / "train.csv",
        test=demo_data / "test.csv",
        repeats=3,
    )
    cosine = result.quality["cosine"]
    assert set(cosine) == {"caption", "image"}
    assert all(0.95 < c["min"] <= c["mean"] <= 1.0001 for c in cosine.values())
    assert set(result.quality) >= {"R@1", "R@5", "R@10"}
    assert {row.graph for row in result.latency} == {"tower caption", "tower image"}
    predictor = plait.load(out)
    ids, vectors = predictor.embed(demo_data / "test.csv", "image")
    assert vectors.shape[1] == 4 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)


def test_a_model_folder_is_exported_first(
    trained: Path, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # ONNX Runtime's scratch files must not land here
    result = quantize(trained, "dynamic", out=tmp_path / "int8", repeats=3)
    assert list((tmp_path / "cwd").iterdir()) == []
    record = json.loads((tmp_path / "int8" / "export.json").read_text())
    assert record["source"]["folder"] == str(trained.resolve())
    assert result.latency[0].runtime == "pytorch"
    plait.load(tmp_path / "int8").predict(demo_data / "test.csv")


def test_bad_requests_are_one_clear_error(classifier_export: Path, trained: Path, tmp_path: Path):
    with pytest.raises(PlaitError, match="choose one of dynamic, static"):
        quantize(classifier_export, "int4", out=tmp_path / "a")
    quantize(classifier_export, "dynamic", out=tmp_path / "q", repeats=3)
    with pytest.raises(PlaitError, match="already quantized"):
        quantize(tmp_path / "q", "dynamic", out=tmp_path / "qq")
    with pytest.raises(PlaitError, match="--calibration"):
        quantize(classifier_export, "static", out=tmp_path / "s", calibration=tmp_path / "no.csv")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(PlaitError, match="holds other files"):
        quantize(classifier_export, "dynamic", out=tmp_path / "mine")
    with pytest.raises(PlaitError, match="no such model"):
        quantize(tmp_path / "nothing", "dynamic", out=tmp_path / "b")


def test_cli_prints_the_tables(classifier_export: Path, tmp_path: Path):
    runner = CliRunner()
    ok = runner.invoke(app, ["quantize", str(classifier_export), "--out", str(tmp_path / "q")])
    assert ok.exit_code == 0, ok.output
    assert "onnx int8" in ok.stdout and "accuracy" in ok.stdout
    bad = runner.invoke(
        app, ["quantize", str(classifier_export), "--method", "x", "--out", str(tmp_path / "r")]
    )
    assert bad.exit_code == 2 and "choose one of" in bad.output


def test_nodes_named_in_keep_fp32_stay_fp32(classifier_export: Path, tmp_path: Path):
    full = quantize(classifier_export, "dynamic", out=tmp_path / "all", repeats=3)
    kept = quantize(
        classifier_export, "dynamic", out=tmp_path / "kept", repeats=3, keep_fp32=["/head/"]
    )
    record = json.loads((tmp_path / "kept" / "export.json").read_text())
    names = record["quantization"]["graphs"]["model"]["kept_fp32"]
    assert names and all("/head/" in n for n in names)
    count = full.settings["quantized_ops"]["model"]["MatMulInteger"]
    assert kept.settings["quantized_ops"]["model"].get("MatMulInteger", 0) < count
