"""`plait check CONFIG --data` and `plait.check_data`: what `train` would validate (model
names, data files, columns, every row), without training; and pretrained model names that
cannot be loaded fail in seconds, in `check --data` and in `train`."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import plait
import plait.api  # noqa: F401  (imported up front: the timings below measure the check alone)
from plait.cli import app
from plait.errors import ConfigError, DataError


def invoke(*args: object):
    result = CliRunner().invoke(app, [str(a) for a in args], terminal_width=200)
    result.flat = " ".join(result.output.split())
    return result


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture()
def data_copy(demo_data: Path, tmp_path: Path) -> Path:
    return shutil.copytree(demo_data, tmp_path / "data")


def _break_rows(data: Path) -> list[int]:
    """Point three training rows at files that are not there; their data-row numbers."""
    frame = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    positions = [2, 10, 30]
    for i in positions:
        frame.loc[i, "image"] = f"images/missing-{i}.png"
    frame.loc[30, "audio"] = "audio/missing-30.wav"
    frame.to_csv(data / "train.csv", index=False)
    return [p + 1 for p in positions]  # Plait's 1-based data rows


def test_check_data_passes_good_data_without_training(tiny_config, demo_data, tmp_path):
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "runs"))
    result = invoke("check", config, "--data")
    assert result.exit_code == 0, result.output
    assert "rows that pass, per split: train 36, valid 12, test 16" in result.flat
    assert "bad row" not in result.flat
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written


def test_check_without_data_only_checks_the_config(tiny_config, tmp_path):
    raw = tiny_config(tmp_path / "runs")
    raw["data"]["train"] = str(tmp_path / "no-such-table.csv")
    result = invoke("check", write_config(tmp_path / "c.yaml", raw))
    assert result.exit_code == 0, result.output
    assert "no-such-table.csv" in result.output  # the resolved config, printed


def test_check_data_names_a_missing_data_file(tiny_config, tmp_path):
    raw = tiny_config(tmp_path / "runs")
    raw["data"]["test"] = str(tmp_path / "no-such-table.csv")
    result = invoke("check", write_config(tmp_path / "c.yaml", raw), "--data")
    assert result.exit_code == 2, result.output
    assert "no-such-table.csv: manifest file not found" in result.flat
    assert "Traceback" not in result.output


def test_check_data_names_a_misspelled_column_with_a_suggestion(tiny_config, tmp_path):
    raw = tiny_config(tmp_path / "runs")
    raw["modalities"]["caption"]["column"] = "captoin"
    result = invoke("check", write_config(tmp_path / "c.yaml", raw), "--data")
    assert result.exit_code == 2, result.output
    assert "captoin" in result.flat and "did you mean 'caption'" in result.flat


def test_check_data_lists_every_bad_row_and_exits_1(tiny_config, data_copy, tmp_path):
    rows = _break_rows(data_copy)
    raw = tiny_config(tmp_path / "runs")
    raw["data"]["train"] = str(data_copy / "train.csv")
    config = write_config(tmp_path / "c.yaml", raw)
    out = tmp_path / "bad.csv"

    result = invoke("check", config, "--data", "--bad-rows", out)
    assert result.exit_code == 1, result.output
    assert "3 bad row(s), 4 problem(s) (train would stop, data.on_error: raise)" in result.flat
    for row in rows:
        assert f"train.csv, row {row}, column 'image'" in result.flat
        assert f"missing-{row - 1}.png" in result.flat
    assert f"train.csv, row {rows[-1]}, column 'audio'" in result.flat
    bad = pd.read_csv(out)
    assert list(bad.columns) == ["file", "row", "column", "reason"]
    assert sorted(bad["row"].tolist()) == sorted([*rows, rows[-1]])
    assert not (tmp_path / "runs").exists()

    skipping = invoke("check", config, "--data", "--set", "data.on_error=skip")
    assert skipping.exit_code == 0, skipping.output
    assert "train would skip them" in skipping.flat and f"row {rows[0]}" in skipping.flat


def test_check_data_in_python_returns_the_problems(tiny_config, data_copy, tmp_path):
    rows = _break_rows(data_copy)
    raw = tiny_config(tmp_path / "runs")
    raw["data"]["train"] = str(data_copy / "train.csv")
    found = plait.check_data(raw)
    assert found.blocks_training and found.bad_rows == 3
    assert sorted({p.row for p in found.problems}) == rows
    assert {p.column for p in found.problems} == {"image", "audio"}
    assert found.rows["train"] + found.rows["valid"] == 48 - 3
    # exactly what train refuses
    with pytest.raises(DataError) as refused:
        plait.train(raw)
    assert "3 of " in str(refused.value)


# ------------------------------------------------------------------------ hub names
def _with_hub_caption(raw: dict, name: str) -> dict:
    raw["modalities"]["caption"]["encoder"] = {"type": "huggingface", "model": name}
    return raw


@pytest.mark.parametrize("command", ["check", "train"])
def test_unknown_hub_name_fails_fast_with_a_clear_message(command, tiny_config, tmp_path):
    raw = _with_hub_caption(
        tiny_config(tmp_path / "runs"), "sentence-transformers/all-MiniLM-L6-v3"
    )
    config = write_config(tmp_path / "c.yaml", raw)
    args = ["check", config, "--data"] if command == "check" else ["train", config]
    start = time.perf_counter()
    result = invoke(*args)
    seconds = time.perf_counter() - start
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    flat = result.flat
    assert "modality `caption`" in flat and "sentence-transformers/all-MiniLM-L6-v3" in flat
    assert "HF_HUB_OFFLINE" in flat and "typo" in flat and "local folder" in flat
    assert seconds < 10, seconds
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_python_train_with_an_unknown_hub_name_raises_a_config_error(tiny_config, tmp_path):
    raw = _with_hub_caption(tiny_config(tmp_path / "runs"), "no-such-org/no-such-model")
    with pytest.raises(ConfigError, match="no-such-org/no-such-model"):
        plait.train(raw)
    assert not (tmp_path / "runs").exists()
