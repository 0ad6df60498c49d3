"""A supervised model exported to ONNX predicts like the PyTorch model it came from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import plait
from plait.export import OnnxPredictor


@pytest.fixture(scope="module")
def concat_export(untrained, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("concat")
    model = untrained(root / "model")
    out = root / "onnx"
    plait.export(model, out)
    return model, out


def test_export_folder_records_versions_exporter_parity_and_source(concat_export):
    model, out = concat_export
    record = json.loads((out / "export.json").read_text())
    assert record["task"] == "classification"
    assert {"torch", "onnx", "onnxruntime", "plait"} <= set(record["versions"])
    graph = record["graphs"]["model"]
    assert graph["exporter"] in {"legacy", "dynamo"}
    names = [i["name"] for i in graph["inputs"]]
    assert {"caption.input_ids", "caption.present", "image.pixel_values", "audio.present"} <= set(
        names
    )
    cases = {c["case"] for c in graph["parity"]}
    assert {"batch 1", "batch 3", "batch 16, no image", "batch 1, no audio"} <= cases
    assert any("tokens " in case and "frames" in case for case in cases)
    assert all(c["ok"] and c["max_abs"] <= 1e-4 for c in graph["parity"])
    source = json.loads((model / "manifest.json").read_text())["files"]
    assert record["source"]["files"] == {k: v["sha256"] for k, v in source.items()}
    for name in ("model.onnx", "config.yaml", "labels.json", "manifest.json"):
        assert (out / name).is_file()


def test_onnx_predictor_gives_the_torch_predictors_columns_and_values(concat_export, export_data):
    model, out = concat_export
    table = export_data / "test.csv"
    onnx = plait.load(out)
    torch_model = plait.load(model)
    assert isinstance(onnx, OnnxPredictor)
    assert onnx.providers[0] == "CPUExecutionProvider"
    got, expected = onnx.predict(table), torch_model.predict(table)
    assert list(got.columns) == list(expected.columns)
    assert (got["prediction"] == expected["prediction"]).all()
    pd.testing.assert_frame_equal(got, expected, atol=1e-5, rtol=0)
    pd.testing.assert_frame_equal(
        onnx.predict_proba(table), torch_model.predict_proba(table), atol=1e-5, rtol=0
    )
    scores, reference = onnx.evaluate(table), torch_model.evaluate(table)
    assert np.isclose(scores["accuracy"], reference["accuracy"])


def test_cli_exports_prints_parity_and_refuses_bad_input(concat_export, export_data, tmp_path):
    from typer.testing import CliRunner

    from plait.cli import app

    model, _ = concat_export
    runner = CliRunner()
    out = tmp_path / "cli-onnx"
    args = ["export", str(model), "--format", "onnx", "--out", str(out)]
    result = runner.invoke(app, [*args, "--data", str(export_data / "test.csv")])
    assert result.exit_code == 0, result.output
    assert "ONNX parity with PyTorch" in result.stdout and "no caption" in result.stdout
    assert (out / "export.json").is_file()
    wrong = runner.invoke(app, [*args, "--format", "tflite"])
    assert wrong.exit_code == 2 and "unknown export format 'tflite'" in wrong.output
    missing = runner.invoke(app, ["export", str(tmp_path / "nope"), "--out", str(out)])
    assert missing.exit_code == 2 and "not found" in missing.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    refused = runner.invoke(app, ["export", str(model), "--out", str(busy)])
    assert refused.exit_code == 2 and "holds other files" in refused.output
    assert (busy / "notes.txt").read_text() == "mine"
