"""`plait prune`: structured pruning shrinks every fusion and the folder reloads with the
same outputs; unstructured pruning zeroes weights; the fine-tune keeps the zeros and
trains; bad input is one clear error."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

import plait
from plait.cli import app
from plait.compress import prune
from plait.compress import structured as structured_module
from plait.errors import PlaitError
from plait.fusion import FUSIONS
from plait.pruned_shapes import PRUNED_SHAPES

prune_module = importlib.import_module("plait.compress.prune")  # the module, not plait.prune
SAVED_V0 = Path(__file__).parents[1] / "fixtures" / "saved_v0"


def _with_a_missing_modality(demo_data: Path, tmp_path: Path) -> Path:
    """test.csv with the image blanked in every other row (absolute paths)."""
    frame = pd.read_csv(demo_data / "test.csv")
    for column in ("image", "audio"):
        frame[column] = [str(demo_data / v) if isinstance(v, str) else v for v in frame[column]]
    frame["image"] = frame["image"].astype(object)
    frame.loc[::2, "image"] = None
    path = tmp_path / "missing.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_structured_pruning_shrinks_every_fusion_and_the_folder_reloads(
    fusion: str, build_predictor, demo_data: Path, tmp_path: Path
):
    predictor = build_predictor(fusion={"method": fusion, "dim": 16})
    before = sum(p.numel() for p in predictor.model.parameters())
    result = prune(
        predictor, 0.5, structured=True, out=tmp_path / "pruned", test=demo_data / "test.csv"
    )
    assert result.rows[1].params < 0.8 * before, "layers did not shrink"
    assert result.rows[1].size_mb < result.rows[0].size_mb
    manifest = json.loads((tmp_path / "pruned" / "manifest.json").read_text())
    assert PRUNED_SHAPES in manifest["files"]
    shapes = json.loads((tmp_path / "pruned" / PRUNED_SHAPES).read_text())["modules"]
    weights = load_file(str(tmp_path / "pruned" / "model.safetensors"))
    for path, entry in shapes.items():
        for name, shape in entry["tensors"].items():
            key = f"{path}.{name}" if path else name
            if key in weights:
                assert list(weights[key].shape) == shape
    # the caller's model is untouched; the reloaded one predicts as the pruned one did
    assert sum(p.numel() for p in predictor.model.parameters()) == before
    reloaded = plait.load(tmp_path / "pruned")
    table = _with_a_missing_modality(demo_data, tmp_path)
    got = reloaded.predict_proba(table)
    again = plait.load(tmp_path / "pruned").predict_proba(table)
    assert got.notna().all().all()
    pd.testing.assert_frame_equal(got, again)
    assert sum(p.numel() for p in reloaded.model.parameters()) == result.rows[1].params


def test_structured_pruning_keeps_the_outputs(build_predictor, demo_data: Path, tmp_path: Path):
    """The classes (head output) and a tensor fusion's outer-product factors keep their
    widths; the encoders inside shrink."""
    predictor = build_predictor(fusion={"method": "tensor", "dim": 16})
    classes = predictor.labels.num_outputs
    prune(predictor, 0.5, structured=True, out=tmp_path / "p", test=demo_data / "test.csv")
    model = plait.load(tmp_path / "p").model
    assert model.head.net[-1].out_features == classes
    width = predictor.config.fusion.tensor_dim
    assert all(proj.out_features == width for proj in model.fusion.proj)
    shapes = json.loads((tmp_path / "p" / PRUNED_SHAPES).read_text())["modules"]
    assert any(path.startswith("encoders.image") for path in shapes)


def test_a_fusion_torch_pruning_cannot_follow_is_refused_by_name(
    build_predictor, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Unprotected, the outer product of tensor fusion defeats torch-pruning's graph: the
    refusal names the fusion and points at unstructured pruning."""
    monkeypatch.setattr(structured_module, "_fusion_interfaces", lambda fusion: [])
    predictor = build_predictor(fusion={"method": "tensor", "dim": 16, "tensor_dim": 2})
    with pytest.raises(PlaitError, match=r"fusion `tensor`.*without --structured"):
        prune(predictor, 0.5, structured=True, out=tmp_path / "p", test=demo_data / "test.csv")
    assert not (tmp_path / "p").exists()


def test_an_encoder_torch_pruning_mis_follows_keeps_its_widths(
    build_predictor, demo_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """When pruning every encoder breaks the model (seen with a text CNN of uneven
    branches), the retry keeps one encoder whole and prunes the rest."""
    real = structured_module.prune_channels

    def failing_unless_caption_kept(model, amount, example, forward, outputs, what, keep=None):
        if not keep or keep[0] is not model.encoders["caption"]:
            raise PlaitError("cannot follow")
        real(model, amount, example, forward, outputs, what, keep)

    monkeypatch.setattr(prune_module, "prune_channels", failing_unless_caption_kept)
    predictor = build_predictor()
    result = prune(predictor, 0.5, structured=True, out=tmp_path / "p", test=demo_data / "test.csv")
    assert result.settings["encoders_kept_whole"] == ["caption"]
    shapes = json.loads((tmp_path / "p" / PRUNED_SHAPES).read_text())["modules"]
    assert not any(path.startswith("encoders.caption") for path in shapes)
    assert any(path.startswith("encoders.image") for path in shapes)
    plait.load(tmp_path / "p").predict(demo_data / "test.csv")


def test_unstructured_pruning_zeroes_weights_and_saves_a_plain_folder(
    build_predictor, demo_data: Path, tmp_path: Path
):
    predictor = build_predictor()
    result = prune(predictor, 0.6, out=tmp_path / "p", test=demo_data / "test.csv")
    assert result.settings["zero_weights"] == pytest.approx(0.6, abs=0.02)
    assert not (tmp_path / "p" / PRUNED_SHAPES).exists()
    assert result.rows[1].params == result.rows[0].params
    assert result.rows[1].nonzero_params < 0.7 * result.rows[0].nonzero_params  # biases stay
    assert result.rows[1].zipped_mb < result.rows[0].zipped_mb  # zeros compress
    assert all(row.latency_ms > 0 for row in result.rows)
    weights = load_file(str(tmp_path / "p" / "model.safetensors"))
    assert not any(k.endswith(("_orig", "_mask")) for k in weights)  # masks made permanent
    report = json.loads((tmp_path / "p" / "prune_report.json").read_text())
    assert [r["stage"] for r in report["rows"]] == ["before", "pruned"]
    assert report["rows"][0]["metric"] == "accuracy"
    plait.load(tmp_path / "p").predict(demo_data / "test.csv")


def test_fine_tune_trains_the_pruned_model_and_keeps_its_zeros(trained: Path, tmp_path: Path):
    plain = prune(trained, 0.5, out=tmp_path / "plain")
    tuned = prune(trained, 0.5, finetune_epochs=1, out=tmp_path / "tuned")
    assert [r.stage for r in plain.rows] == ["before", "pruned"]
    assert [r.stage for r in tuned.rows] == ["before", "pruned", "fine-tuned"]
    assert tuned.rows[2].nonzero_params <= tuned.rows[1].nonzero_params
    a = load_file(str(tmp_path / "plain" / "model.safetensors"))
    b = load_file(str(tmp_path / "tuned" / "model.safetensors"))
    matrices = [k for k in a if k.endswith(".weight") and a[k].dim() >= 2]
    assert matrices
    for key in matrices:  # the same L1 masks: every weight pruned before training stays 0
        assert bool(((a[key] == 0) <= (b[key] == 0)).all()), key
    changed = [k for k in a if a[k].dtype.is_floating_point and not np.allclose(a[k], b[k])]
    assert changed, "the fine-tune changed no weight"
    assert tuned.settings["measured_on"].endswith("test.csv")


def test_structured_fine_tune_keeps_the_pruned_widths(trained: Path, tmp_path: Path):
    result = prune(trained, 0.5, structured=True, finetune_epochs=1, out=tmp_path / "p")
    model = plait.load(tmp_path / "p").model
    assert sum(p.numel() for p in model.parameters()) == result.rows[2].params
    assert result.rows[2].params < result.rows[0].params


def test_aligned_model_prunes_both_ways_and_keeps_its_embedding_width(
    demo_data: Path, tmp_path: Path
):
    for structured in (False, True):
        out = tmp_path / f"p{structured}"
        result = prune(
            SAVED_V0 / "aligned", 0.5, structured=structured, out=out, test=demo_data / "test.csv"
        )
        assert result.rows[0].metric.startswith("R@5")
        predictor = plait.load(out)
        _, vectors = predictor.embed(demo_data / "test.csv", "image")
        assert vectors.shape[1] == 4 and np.isfinite(vectors).all()  # alignment.dim kept
    assert result.rows[1].params < result.rows[0].params


def test_bad_requests_are_one_clear_error(
    build_predictor, trained: Path, demo_data: Path, tmp_path: Path
):
    predictor = build_predictor()
    with pytest.raises(PlaitError, match="between 0 and 1"):
        prune(predictor, 1.5, out=tmp_path / "p")
    with pytest.raises(PlaitError, match="is the model being pruned"):
        prune(trained, 0.5, out=trained)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(PlaitError, match="holds other files"):
        prune(trained, 0.5, out=tmp_path / "other")
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "export.json").write_text("{}")
    with pytest.raises(PlaitError, match="is an ONNX export"):
        prune(tmp_path / "onnx", 0.5, out=tmp_path / "p")
    frozen = build_predictor()
    for param in frozen.model.parameters():
        param.requires_grad_(False)
    with pytest.raises(PlaitError, match="nothing to prune: every Linear and Conv layer"):
        prune(frozen, 0.5, out=tmp_path / "f", test=demo_data / "test.csv")


def test_fine_tune_on_a_table_with_another_vocabulary_is_refused(
    trained: Path, demo_data: Path, tmp_path: Path
):
    """The fine-tune refits the processors on its table; the pruned model only fits the
    vocabulary it was trained with, so other captions are refused before training."""
    frame = pd.read_csv(demo_data / "train.csv")
    for column in ("image", "audio"):
        frame[column] = [str(demo_data / v) if isinstance(v, str) else v for v in frame[column]]
    frame["caption"] = [f"zebra{i} quokka{i % 7}" for i in range(len(frame))]
    table = tmp_path / "other-words.csv"
    frame.to_csv(table, index=False)
    with pytest.raises(PlaitError, match=r"`caption` processor fitted on this table differs"):
        prune(trained, 0.5, finetune_epochs=1, data=table, out=tmp_path / "p")


def test_cli_prints_the_table_and_exits_2_on_a_bad_amount(trained: Path, tmp_path: Path):
    runner = CliRunner()
    ok = runner.invoke(
        app,
        ["prune", str(trained), "--amount", "0.3", "--structured", "--out", str(tmp_path / "p")],
    )
    assert ok.exit_code == 0, ok.output
    assert "before" in ok.stdout and "pruned" in ok.stdout and "accuracy" in ok.stdout
    bad = runner.invoke(app, ["prune", str(trained), "--amount", "2", "--out", str(tmp_path / "q")])
    assert bad.exit_code == 2
    assert "between 0 and 1" in bad.output and "Traceback" not in bad.output
