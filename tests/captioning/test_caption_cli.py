"""`plait caption`, `plait.caption` and `plait evaluate` on a saved tiny captioner."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import plait
from plait.cli import app
from plait.config import PlaitConfig
from plait.datasets.captioned_scenes import generate_captioned_scenes
from plait.errors import PlaitError
from plait.tasks.captioning_predictor import CaptioningPredictor

from .test_captioning import scene_config, train_steps


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(scenes folder, model folder) of a captioner trained for a few steps."""
    root = tmp_path_factory.mktemp("cli")
    scenes = root / "scenes"
    generate_captioned_scenes(scenes, n_train=16, n_valid=4, n_test=4, n_heldout=4, seed=0)
    raw = scene_config(scenes, root)
    model, data, _ = train_steps(raw, 3)
    predictor = CaptioningPredictor(model, PlaitConfig.from_dict(raw), data.processors)
    return scenes, predictor.save(root / "model")


def test_caption_files_and_table(saved: tuple[Path, Path], tmp_path: Path):
    scenes, model = saved
    files = sorted((scenes / "images").glob("*.png"))[:3]
    out = tmp_path / "caps.csv"
    result = CliRunner().invoke(
        app, ["caption", str(model), *map(str, files), "-o", str(out), "--num-beams", "2"]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert frame["id"].tolist() == [str(f) for f in files] and frame["caption"].notna().all()
    expected = plait.caption(model, files, num_beams=2, progress=False)
    pd.testing.assert_frame_equal(frame, expected.astype({"caption": object}), check_dtype=False)

    table_out = tmp_path / "table.csv"
    result = CliRunner().invoke(
        app, ["caption", str(model), "--data", str(scenes / "test.csv"), "-o", str(table_out)]
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(table_out)) == 4


def test_unreadable_file_exits_3_and_a_wrong_call_exits_2(saved: tuple[Path, Path], tmp_path: Path):
    scenes, model = saved
    good = next((scenes / "images").glob("*.png"))
    out = tmp_path / "caps.csv"
    result = CliRunner().invoke(
        app, ["caption", str(model), str(good), str(tmp_path / "nope.png"), "-o", str(out)]
    )
    assert result.exit_code == 3, result.output
    frame = pd.read_csv(out)
    assert frame["caption"].isna().tolist() == [False, True] and "nope.png" in frame["error"][1]
    result = CliRunner().invoke(app, ["caption", str(model), "-o", str(out)])
    assert result.exit_code == 2 and "files or a table" in result.output
    result = CliRunner().invoke(app, ["caption", str(tmp_path / "nothing"), str(good)])
    assert result.exit_code == 2 and "error" in result.output
    with pytest.raises(PlaitError, match="top_p"):
        plait.caption(model, [good], top_p=0.0)


def test_evaluate_prints_caption_metrics_and_writes_the_report(
    saved: tuple[Path, Path], tmp_path: Path
):
    scenes, model = saved
    result = CliRunner().invoke(
        app, ["evaluate", str(model), str(scenes / "test.csv"), "--out", str(tmp_path / "rep")]
    )
    assert result.exit_code == 0, result.output
    assert "bleu_4" in result.output and "cider_d" in result.output
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Caption metrics" in html and "CIDEr-D" in html and "data:image/png;base64" in html


def test_export_cli_writes_a_captioner_and_says_what_it_exported(
    saved: tuple[Path, Path], tmp_path: Path
):
    """The export itself is tested in tests/export/test_captioning_export.py; here the
    command line: both graphs exported, the parity table printed, a bad format refused."""
    _, model = saved
    args = ["export", str(model), "--out", str(tmp_path / "onnx")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "caption encoder: legacy" in result.output and "caption step: legacy" in result.output
    assert "captions through ONNX Runtime equal PyTorch's: 4/4 rows with 1 beam(s)" in (
        result.output
    )
    assert (tmp_path / "onnx" / "caption_step.onnx").is_file()
    wrong = CliRunner().invoke(app, [*args, "--format", "tflite"])
    assert wrong.exit_code == 2 and "unknown export format" in wrong.output
