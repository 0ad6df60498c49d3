"""The `plait` command line, run in-process with Typer's CliRunner on the tiny demo data."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from plait.cli import app
from plait.config import PlaitConfig

COMMANDS = ["demo", "train", "evaluate", "predict", "robustness", "report", "check"]


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str):
    # wide enough that a long tmp path (pytest-xdist adds popen-gwN/) stays on one line
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "1000"}, terminal_width=200)
    # every message as one line (rich may still wrap tables)
    result.flat = " ".join(result.output.split())
    return result


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_help_lists_every_command_and_each_shows_an_example(runner):
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output
    for command in COMMANDS:
        result = invoke(runner, command, "--help")
        assert result.exit_code == 0, command
        assert "Example" in result.output and f"plait {command}" in result.output, command


def test_python_dash_m_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "plait.cli", "--help"], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0 and "train" in done.stdout


def test_check_prints_the_resolved_config(runner, tiny_config, demo_data, tmp_path):
    raw = tiny_config(tmp_path / "runs")
    raw["data"]["train"] = os.path.relpath(demo_data / "train.csv", tmp_path)
    raw["output_dir"] = "runs"
    del raw["fusion"]
    path = write_yaml(tmp_path / "cfg.yaml", raw)

    result = invoke(runner, "check", path)
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout)
    # relative paths resolved against the YAML's folder, defaults filled in
    assert resolved["data"]["train"] == str((demo_data / "train.csv").resolve())
    assert resolved["output_dir"] == str((tmp_path / "runs").resolve())
    assert resolved["fusion"]["method"] == "concat"
    assert resolved["training"]["optimizer"] == "adamw"
    assert PlaitConfig.from_dict(resolved).modalities.keys() == raw["modalities"].keys()


def test_config_typo_exits_2_with_key_and_suggestion_and_no_traceback(
    runner, tiny_config, tmp_path
):
    raw = tiny_config(tmp_path / "runs")
    raw["trainig"] = raw.pop("training")
    raw["fusion"]["methd"] = "gated"
    path = write_yaml(tmp_path / "typo.yaml", raw)

    for command in ("check", "train"):
        result = invoke(runner, command, path)
        assert result.exit_code == 2, result.output
        assert "unknown key `trainig`. Did you mean `training`?" in result.flat
        assert "unknown key `fusion.methd`. Did you mean `method`?" in result.flat
        assert "typo.yaml" in result.flat
        assert "Traceback" not in result.output
        assert isinstance(result.exception, SystemExit)
    assert not (tmp_path / "runs").exists()


def test_train_predict_evaluate_report_end_to_end(runner, tiny_config, demo_data, tmp_path):
    path = write_yaml(tmp_path / "cfg.yaml", tiny_config(tmp_path / "runs", "cli"))
    result = invoke(runner, "train", path, "--set", "training.epochs=1")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "cli"
    model = run / "model"
    assert f"model: {model}" in result.flat and "accuracy" in result.flat
    # validation scores first, the test scores apart, under a title that says so
    shown = result.flat.index("metrics (validation: choose runs on these)")
    assert shown < result.flat.index("metrics (test: held out, scored once after training)")
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["epochs"] == 1

    # a second `train` into the same folder is refused with a hint, not a traceback
    again = invoke(runner, "train", path)
    assert again.exit_code == 2 and "--resume" in again.flat

    out = tmp_path / "out.csv"
    result = invoke(runner, "predict", model, demo_data / "test.csv", "-o", out)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert len(frame) == 16 and "prediction" in frame.columns
    assert f"wrote 16 predictions to {out}" in result.flat

    report = tmp_path / "eval"
    result = invoke(runner, "evaluate", model, demo_data / "test.csv", "--out", report)
    assert result.exit_code == 0, result.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["n"] == 16
    saved = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(saved["accuracy"])
    assert (report / "report.html").is_file()

    compare = tmp_path / "compare"
    result = invoke(runner, "report", run, "--out", compare)
    assert result.exit_code == 0, result.output
    assert (compare / "comparison.html").is_file()
    assert "cli" in (compare / "comparison.html").read_text()

    missing = invoke(runner, "report", tmp_path / "nowhere", "--out", compare)
    assert missing.exit_code == 2 and "no report/metrics.json" in missing.flat


def test_report_compares_on_validation_unless_told_otherwise(runner, tmp_path):
    def run(name: str, metrics: dict) -> Path:
        folder = tmp_path / name / "report"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(metrics))
        return folder.parent

    a = run("a", {"split": "test", "accuracy": 0.91, "valid": {"split": "valid", "accuracy": 0.61}})
    b = run("b", {"split": "test", "accuracy": 0.82, "valid": {"split": "valid", "accuracy": 0.72}})
    old = run("old", {"split": "test", "accuracy": 0.93})

    result = invoke(runner, "report", a, b, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert "comparison (validation)" in result.flat
    assert "0.6100" in result.output and "0.7200" in result.output
    assert "0.9100" not in result.output and "0.8200" not in result.output

    result = invoke(runner, "report", a, b, old, "--split", "test", "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert "comparison (test)" in result.flat and "0.9100" in result.output
    assert "0.9300" in result.output and "0.6100" not in result.output

    result = invoke(runner, "report", a, old, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert "no valid scores in old" in result.flat


@pytest.fixture(scope="module")
def saved_model(tiny_config, tmp_path_factory) -> Path:
    from plait.api import train_run as fit

    out = tmp_path_factory.mktemp("runs")
    raw = tiny_config(out, "for-predict", training={"epochs": 1})
    return fit(PlaitConfig.from_dict(raw)).model_dir


def test_robustness_writes_one_row_per_condition(runner, saved_model, demo_data, tmp_path):
    out = tmp_path / "robust"
    result = invoke(
        runner, "robustness", saved_model, demo_data / "test.csv", "--noise", "2", "--out", out
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "robustness.csv")
    expected = ["clean"] + [f"missing:{m}" for m in ("caption", "image", "audio")]
    expected += [f"noise:{m}@2" for m in ("caption", "image", "audio")]
    assert list(frame["condition"]) == expected
    assert frame.loc[0, "drop_vs_clean"] == 0
    assert (out / "report.html").is_file() and "Robustness" in (out / "report.html").read_text()


def test_predict_names_the_missing_file_and_row(runner, saved_model, demo_data, tmp_path):
    frame = pd.read_csv(demo_data / "test.csv")
    for column in ("image", "audio"):
        frame[column] = [str(demo_data / v) if isinstance(v, str) else v for v in frame[column]]
    frame["image"] = frame["image"].astype(object)
    frame.loc[3, "image"] = str(tmp_path / "gone [old].png")  # brackets: not rich markup
    table = tmp_path / "new.csv"
    frame.to_csv(table, index=False)

    out = tmp_path / "pred.csv"
    result = invoke(runner, "predict", saved_model, table, "-o", out, "--on-error", "raise")
    assert result.exit_code == 2, result.output
    assert f"{table}: 1 of 16 row(s) cannot be used" in result.flat
    assert f"{table}, row 4, column 'image'" in result.flat
    assert str(tmp_path / "gone [old].png") in result.flat
    assert "--on-error skip" in result.flat
    assert "Traceback" not in result.output
    assert not out.exists()


def _bad_rows(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str}, keep_default_na=False)


def test_predict_keeps_every_row_and_lists_every_bad_one(
    runner, saved_model, hostile_table, hostile_rows, tmp_path
):
    """A model trained with the default `data.on_error: raise` still predicts a table with
    nine unreadable files: one output row per input row, the nine listed, exit 3."""
    out = tmp_path / "predictions.csv"
    result = invoke(runner, "predict", saved_model, hostile_table, "-o", out)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output

    source = pd.read_csv(hostile_table, dtype={"id": str})
    frame = pd.read_csv(out, dtype={"id": str})
    assert list(frame["id"]) == list(source["id"])  # one row per input row, in order
    errors = frame["error"].notna()
    assert sorted(frame.index[errors] + 1) == sorted(hostile_rows)
    for row, (column, name) in hostile_rows.items():
        reason = frame.loc[row - 1, "error"]
        assert f"column '{column}'" in reason and name in reason, (row, reason)
    proba = frame[[c for c in frame.columns if c.startswith("proba_")]]
    assert frame.loc[errors, "prediction"].isna().all() and proba[errors].isna().all().all()
    assert frame.loc[~errors, "prediction"].notna().all()
    assert np.allclose(proba[~errors].sum(1), 1.0, atol=1e-5)

    listed = _bad_rows(tmp_path / "predictions.bad_rows.csv")
    assert list(listed.columns) == ["row", "id", "column", "file", "reason"]
    assert list(listed["row"]) == sorted(hostile_rows)  # every one, sorted by row
    assert list(listed["id"]) == [source["id"][r - 1] for r in sorted(hostile_rows)]
    assert list(listed["column"]) == [hostile_rows[r][0] for r in sorted(hostile_rows)]
    assert set(listed["file"]) == {str(hostile_table)}

    assert f"wrote 25 predictions to {out}" in result.flat
    assert "skipped 9 of 25 row(s)" in result.flat
    assert f"{hostile_table}, row 2, column 'image'" in result.flat  # the first few...
    assert "and 4 more problem(s)" in result.flat  # ...not all nine on the terminal
    assert str(tmp_path / "predictions.bad_rows.csv") in result.flat

    # a clean table written to the same output: exit 0 and no stale list left behind
    clean = source.drop(index=[r - 1 for r in hostile_rows])
    clean.to_csv(tmp_path / "clean.csv", index=False)
    again = invoke(runner, "predict", saved_model, tmp_path / "clean.csv", "-o", out)
    assert again.exit_code == 0, again.output
    assert "error" not in pd.read_csv(out).columns
    assert not (tmp_path / "predictions.bad_rows.csv").exists()


def test_predict_on_error_raise_names_the_first_row_and_how_many(
    runner, saved_model, hostile_table, tmp_path
):
    out = tmp_path / "predictions.csv"
    result = invoke(runner, "predict", saved_model, hostile_table, "-o", out, "--on-error", "raise")
    assert result.exit_code == 2, result.output
    assert f"{hostile_table}: 9 of 25 row(s) cannot be used" in result.flat
    assert "the first is row 2, column 'image': image file not found" in result.flat
    assert "Traceback" not in result.output
    assert not out.exists() and not (tmp_path / "predictions.bad_rows.csv").exists()
    wrong = invoke(runner, "predict", saved_model, hostile_table, "--on-error", "ignore")
    assert wrong.exit_code == 2 and "raise" in wrong.output and "skip" in wrong.output


def test_evaluate_refuses_bad_rows_unless_told_to_skip(
    runner, saved_model, hostile_table, hostile_rows, tmp_path
):
    refused = invoke(runner, "evaluate", saved_model, hostile_table, "--out", tmp_path / "no")
    assert refused.exit_code == 2, refused.output
    assert "9 of 25 row(s) cannot be used" in refused.flat and "--on-error skip" in refused.flat
    assert not (tmp_path / "no" / "metrics.json").exists()

    report = tmp_path / "eval"
    result = invoke(
        runner, "evaluate", saved_model, hostile_table, "--out", report, "--on-error", "skip"
    )
    assert result.exit_code == 3, result.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["n"] == 16 and metrics["skipped_rows"] == 9
    assert "skipped 9 of 25 row(s)" in result.flat
    assert list(_bad_rows(report / "bad_rows.csv")["row"]) == sorted(hostile_rows)

    # the metrics are those of the good rows alone
    import plait

    source = pd.read_csv(hostile_table)
    good = source.drop(index=[r - 1 for r in hostile_rows])
    expected = plait.load(saved_model).evaluate(good)
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"])
    assert expected["skipped_rows"] == 0

    # without --out the terminal says where the full list can be had
    bare = invoke(runner, "evaluate", saved_model, hostile_table, "--on-error", "skip")
    assert bare.exit_code == 3 and "--out DIR writes the full list" in bare.flat


def test_demo_runs_and_writes_the_comparison(runner, tmp_path):
    out = tmp_path / "demo"
    result = invoke(
        runner, "demo", "--rows", "48", "--epochs", "1", "--fusions", "concat", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert (out / "report" / "comparison.html").is_file()
    assert (out / "runs" / "fusion-concat" / "model" / "model.safetensors").is_file()


def _plait(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "plait.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        **kwargs,
    )


def _final_weights(run_dir: Path) -> dict:
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return state["state_dict"]


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_sigterm_writes_a_resumable_checkpoint_says_how_to_resume_and_exits_143(
    runner, tiny_config, tmp_path
):
    """A real `plait train` process sent SIGTERM mid-training (as a scheduler or `kill`
    does): non-zero exit, a message naming the resume command, no model; `--resume`
    then ends with the weights of an uninterrupted run. Only the interrupted run needs a
    process of its own (for the signal); the resume and the uninterrupted run go through
    the same command in-process, which saves two interpreter starts."""
    import signal
    import time

    raw = tiny_config(tmp_path / "runs", "cut", training={"epochs": 6})
    path = write_yaml(tmp_path / "cut.yaml", raw)
    whole = write_yaml(tmp_path / "whole.yaml", {**raw, "name": "whole"})
    run = tmp_path / "runs" / "cut"

    process = _plait("train", path)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.ckpt").is_file():  # training has started
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    flat = " ".join(output.split())
    assert process.returncode == 143, output
    assert "interrupted by SIGTERM" in flat and f"plait train {path} --resume" in flat, output
    assert "Traceback" not in output
    assert not (run / "model").exists()
    assert (run / "checkpoints" / "last.ckpt").is_file()

    for args in ((path, "--resume"), (whole,)):
        result = invoke(runner, "train", *args)
        assert result.exit_code == 0, result.output
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["epochs"] == 6
    cut, full = _final_weights(run), _final_weights(tmp_path / "runs" / "whole")
    assert cut.keys() == full.keys()
    for key, value in full.items():
        assert torch.equal(value, cut[key]), key


class InterruptAtSecondEpoch(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_interrupted_train_exits_130_and_resume_finishes(
    runner, tiny_config, tmp_path, monkeypatch
):
    fit_module = importlib.import_module("plait.training.fit")
    make_trainer = fit_module._trainer

    def interrupting_trainer(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        trainer.callbacks.append(InterruptAtSecondEpoch())
        return trainer

    path = write_yaml(tmp_path / "cfg.yaml", tiny_config(tmp_path / "runs", "cut"))
    monkeypatch.setattr(fit_module, "_trainer", interrupting_trainer)
    result = invoke(runner, "train", path)
    assert result.exit_code == 130, result.output
    assert "interrupted by SIGINT" in result.flat and f"plait train {path} --resume" in result.flat
    assert "holds the run after 1 finished epoch(s)" in result.flat  # the end of epoch 1 of 2
    assert "Traceback" not in result.output
    monkeypatch.setattr(fit_module, "_trainer", make_trainer)

    result = invoke(runner, "train", path, "--resume")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "runs" / "cut" / "report" / "metrics.json").read_text())
    assert metrics["epochs"] == 2


def test_train_a_table_with_no_yaml_then_rerun_its_config(runner, demo_data, tmp_path):
    quick = ["--set", "training.epochs=1", "--set", "training.progress=false"]
    quick += ["--set", "training.tensorboard=false", "--set", "training.threads=1"]
    quick += ["--set", "evaluation.report=false", "--set", f"output_dir={tmp_path}"]
    result = invoke(
        runner, "train", demo_data / "train.csv", "--label", "label", "--preset", "fast", *quick
    )
    assert result.exit_code == 0, result.output
    for column, role in [("caption", "text"), ("image", "image"), ("audio", "audio"), ("id", "id")]:
        assert f"│ {column}" in result.output and f"│ {role}" in result.output
    run_dir = tmp_path / "train-label"
    assert (run_dir / "model" / "model.safetensors").is_file()
    assert f"config saved as {run_dir / 'config.yaml'}" in result.flat
    # the saved config is a complete config: it retrains as it is
    again = invoke(runner, "train", run_dir / "config.yaml", "--set", "name=again")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "model" / "model.safetensors").is_file()
    assert PlaitConfig.from_yaml(tmp_path / "again" / "config.yaml").modalities.keys() == {
        "caption",
        "image",
        "audio",
    }


def test_train_a_table_refuses_a_wrong_or_missing_label(runner, demo_data):
    wrong = invoke(runner, "train", demo_data / "train.csv", "--label", "lable")
    assert wrong.exit_code == 2
    assert (
        "did you mean 'label'?" in wrong.flat and "id, caption, image, audio, label" in wrong.flat
    )
    missing = invoke(runner, "train", demo_data / "train.csv")
    assert missing.exit_code == 2 and "--label" in missing.flat
    other = invoke(runner, "train", demo_data / "README.md")
    assert other.exit_code == 2 and "not a config" in other.flat


def test_check_on_an_alignment_config_omits_the_blocks_it_does_not_use(
    runner, tiny_config, tmp_path
):
    raw = tiny_config(tmp_path / "runs", alignment={"dim": 16, "pair": ["caption", "image"]})
    result = invoke(runner, "check", write_yaml(tmp_path / "clip.yaml", raw))
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout)
    assert resolved["alignment"]["dim"] == 16
    assert "fusion" not in resolved and "head" not in resolved
    # the matching objective's cross-attention reads the fusion block: shown then
    raw["alignment"]["objectives"] = [{"name": "clip"}, {"name": "itm", "weight": 0.5}]
    result = invoke(runner, "check", write_yaml(tmp_path / "itm.yaml", raw))
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout)
    assert "fusion" in resolved and "head" not in resolved
    # a classifier's config keeps both
    result = invoke(runner, "check", write_yaml(tmp_path / "cls.yaml", tiny_config(tmp_path)))
    assert {"fusion", "head"} <= set(yaml.safe_load(result.stdout))


def test_tables_are_not_cut_when_stdout_is_not_a_terminal(capsys, monkeypatch):
    from rich.table import Table

    from plait.utils.tables import print_table

    monkeypatch.delenv("COLUMNS", raising=False)
    long_value = "/data/" + "very-long-folder-name/" * 12 + "picture.png"  # ~280 characters
    table = Table(title="hits")
    for column in ("rank", "name", "path"):
        table.add_column(column)
    table.add_row("1", "a name, with a comma", long_value)
    print_table(table)
    out = capsys.readouterr().out
    assert long_value in out  # whole, on one line: not cut or wrapped at 80 columns
    assert max(len(line) for line in out.splitlines()) > 280
