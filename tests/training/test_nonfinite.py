"""Non-finite data, losses, metrics and outputs: a run stops (or skips) with the step and
rows named, nothing NaN is ever saved or predicted, and under DDP every process takes the
same decision."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml
from typer.testing import CliRunner

import plait
from plait.api import train_run as fit
from plait.cli import app
from plait.config import PlaitConfig
from plait.errors import ConfigError, DataError, PlaitError
from plait.training.module import PlaitModule
from plait.training.nonfinite import NonFiniteError


def config_of(raw: dict) -> PlaitConfig:
    return PlaitConfig.from_dict(raw)


def _nan_outputs_on(monkeypatch, when) -> list[list[str]]:
    """Make PlaitModule.forward give NaN for the second row of the batches `when(module,
    call)` picks (call: 1-based count of training forwards); returns the ids hit."""
    real = PlaitModule.forward
    calls = {"train": 0}
    hit: list[list[str]] = []

    def forward(self, batch):
        out = real(self, batch)
        if self.training:
            calls["train"] += 1
        if when(self, calls["train"]):
            out = out.clone()
            out[1] = float("nan")
            hit.append(list(batch.ids))
        return out

    monkeypatch.setattr(PlaitModule, "forward", forward)
    return hit


def _all_finite(model_dir: Path) -> bool:
    from safetensors.torch import load_file

    weights = load_file(str(model_dir / "model.safetensors"))
    return all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


# ------------------------------------------------------------------ training loss


def test_nan_training_loss_stops_the_run_naming_step_and_rows(tiny_config, tmp_path, monkeypatch):
    # 36 training rows, batch 16: 3 batches per epoch; the 5th is epoch 2, batch 2
    hit = _nan_outputs_on(monkeypatch, lambda module, call: module.training and call == 5)
    config = config_of(tiny_config(tmp_path, "nan-loss"))
    with pytest.raises(NonFiniteError) as info:
        fit(config)
    message = str(info.value)
    assert "training loss is nan at epoch 2 of 2, training batch 2 of 3" in message
    assert f"model outputs are NaN or infinite (ids: {hit[0][1]})" in message
    assert "training.on_nonfinite: skip" in message
    assert not (tmp_path / "nan-loss" / "model").exists()  # no broken model saved


def test_skip_drops_non_finite_batches_without_a_step_and_counts_them(
    tiny_config, tmp_path, monkeypatch
):
    # every batch of epoch 2 (training forwards 4 to 6) has a NaN loss
    _nan_outputs_on(monkeypatch, lambda module, call: module.training and call >= 4)
    snapshot: dict[str, torch.Tensor] = {}

    class Snapshot(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 0:
                snapshot.update({k: v.detach().clone() for k, v in pl_module.named_parameters()})

    fit_module = importlib.import_module("plait.training.fit")
    make_trainer = fit_module._trainer

    def trainer_with_snapshot(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        trainer.callbacks.append(Snapshot())
        return trainer

    monkeypatch.setattr(fit_module, "_trainer", trainer_with_snapshot)
    raw = tiny_config(tmp_path, "skip", training={"on_nonfinite": "skip"})
    run = fit(config_of(raw))

    assert run.metrics["nonfinite_batches_skipped"] == 3
    saved = json.loads((run.run_dir / "report" / "metrics.json").read_text())
    assert saved["nonfinite_batches_skipped"] == 3
    # no optimizer step was taken on a skipped batch: the weights are still epoch 1's
    last = torch.load(run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["plait_nonfinite_skipped"] == 3
    assert snapshot
    for key, value in snapshot.items():
        assert torch.equal(last["state_dict"][key], value), key
    assert _all_finite(run.model_dir)


def test_skip_still_stops_when_the_forward_pass_poisoned_batch_norm(
    tiny_config, tmp_path, monkeypatch
):
    real = PlaitModule.forward
    calls = [0]

    def forward(self, batch):
        out = real(self, batch)
        if self.training:
            calls[0] += 1
            if calls[0] == 2:  # as a NaN input would: running statistics and outputs NaN
                for name, buffer in self.named_buffers():
                    if name.endswith("running_mean"):
                        buffer.fill_(float("nan"))
                        break
                out = out * float("nan")
        return out

    monkeypatch.setattr(PlaitModule, "forward", forward)
    raw = tiny_config(tmp_path, "poisoned", training={"on_nonfinite": "skip"})
    with pytest.raises(NonFiniteError, match=r"it made model\..*running_mean non-finite"):
        fit(config_of(raw))
    assert not (tmp_path / "poisoned" / "model").exists()


def test_on_nonfinite_typo_gets_a_suggestion(tiny_config, tmp_path):
    raw = tiny_config(tmp_path, training={"on_nonfinite": "skp"})
    with pytest.raises(ConfigError, match="training.on_nonfinite.*Did you mean `skip`"):
        config_of(raw)


# -------------------------------------------------------------- validation metric


def test_nan_validation_metric_stops_the_run(tiny_config, tmp_path, monkeypatch):
    def in_validation(module, call):
        trainer = module._trainer
        return trainer is not None and trainer.validating and module.current_epoch == 1

    hit = _nan_outputs_on(monkeypatch, in_validation)
    with pytest.raises(NonFiniteError) as info:
        fit(config_of(tiny_config(tmp_path, "nan-valid", training={"early_stopping": 1})))
    message = str(info.value)
    assert "non-finite validation metric valid/loss = nan after epoch 2 of 2" in message
    assert f"first in validation batch 1: model outputs are NaN or infinite (ids: {hit[0][1]})" in (
        message
    )
    assert not (tmp_path / "nan-valid" / "model").exists()


# ------------------------------------------------------------------- NaN audio rows


def _with_nan_audio(demo_data: Path, out: Path) -> Path:
    """train.csv / valid.csv / test.csv copies whose 3rd training and 2nd validation
    rows point at a float WAV with NaN samples."""
    out.mkdir(parents=True, exist_ok=True)
    rate = 16000
    wave = (0.1 * np.sin(np.arange(rate) / rate * 2 * np.pi * 440)).astype(np.float32)
    wave[int(0.75 * rate)] = np.nan
    sf.write(out / "nan.wav", wave, rate, subtype="FLOAT")
    train = pd.read_csv(demo_data / "train.csv")
    test = pd.read_csv(demo_data / "test.csv")
    for frame in (train, test):
        for column in ("image", "audio"):
            frame[column] = [
                str(demo_data / v) if isinstance(v, str) and v else v for v in frame[column]
            ]
    train.loc[2, "audio"] = str(out / "nan.wav")
    valid = test.copy()
    valid.loc[1, "audio"] = str(out / "nan.wav")
    train.to_csv(out / "train.csv", index=False)
    valid.to_csv(out / "valid.csv", index=False)
    test.to_csv(out / "test.csv", index=False)
    return out


def test_nan_audio_in_train_and_valid_is_reported_or_skipped(tiny_config, demo_data, tmp_path):
    data = _with_nan_audio(demo_data, tmp_path / "data")
    raw = tiny_config(tmp_path / "runs", "nan-audio", training={"epochs": 1})
    raw["data"].update(
        train=str(data / "train.csv"), valid=str(data / "valid.csv"), test=str(data / "test.csv")
    )
    with pytest.raises(DataError) as info:
        fit(config_of(raw))
    problem = info.value.problems[0]
    assert (problem.file, problem.row, problem.column) == (str(data / "train.csv"), 3, "audio")
    assert "holds NaN samples (first at 0.75 s)" in problem.reason

    raw["name"], raw["data"]["on_error"] = "nan-audio-skip", "skip"
    run = fit(config_of(raw))
    bad = pd.read_csv(run.run_dir / "bad_rows.csv")
    assert {(Path(f).name, r) for f, r in zip(bad["file"], bad["row"], strict=True)} == {
        ("train.csv", 3),
        ("valid.csv", 2),
    }
    assert bad["reason"].str.contains("holds NaN samples").all()
    assert _all_finite(run.model_dir)
    assert np.isfinite(run.metrics["accuracy"])


# ---------------------------------------------------------------------- predictions


def test_non_finite_predictions_raise_naming_the_rows(tiny_config, demo_data, tmp_path):
    run = fit(config_of(tiny_config(tmp_path, "pred", training={"epochs": 1})))
    model = plait.load(run.model_dir)
    real = model.model.forward

    def forward(inputs, presence):
        out = real(inputs, presence)
        out[2] = float("inf")
        return out

    model.model.forward = forward  # type: ignore[method-assign]
    test_ids = [str(i) for i in pd.read_csv(demo_data / "test.csv")["id"]]
    for predict in (model.predict, model.predict_proba):
        with pytest.raises(
            PlaitError, match=f"NaN or infinite for 1 row\\(s\\) \\(ids: {test_ids[2]}\\)"
        ):
            predict(demo_data / "test.csv")


def test_non_finite_embeddings_raise_naming_the_rows(demo_data, tmp_path):
    import shutil

    saved = Path(__file__).resolve().parents[1] / "fixtures" / "saved_v0" / "aligned"
    model = plait.load(shutil.copytree(saved, tmp_path / "aligned"))
    real = model.model.embed

    def embed(name, inputs):
        out = real(name, inputs).clone()
        out[1] = float("nan")
        return out

    model.model.embed = embed  # type: ignore[method-assign]
    ids, _ = plait.load(saved).embed(demo_data / "test.csv", "image")
    with pytest.raises(PlaitError, match=f"NaN or infinite for 1 row\\(s\\) \\(ids: {ids[1]}\\)"):
        model.embed(demo_data / "test.csv", "image")


# ---------------------------------------------------------------------- the CLI


def test_plait_train_exits_non_zero_on_a_nan_loss(tiny_config, tmp_path, monkeypatch):
    _nan_outputs_on(monkeypatch, lambda module, call: module.training and call == 2)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "runs", "cli-nan")))
    result = CliRunner().invoke(app, ["train", str(path)], terminal_width=200)
    flat = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "training loss is nan at epoch 1 of 2, training batch 2 of 3" in flat
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------- DDP

_NAN_ON_RANK_1 = """
    import os
    from plait.training.module import PlaitModule
    real = PlaitModule.forward
    calls = [0]
    def forward(self, batch):
        out = real(self, batch)
        if self.training:
            calls[0] += 1
            if os.environ.get("LOCAL_RANK", "0") == "1" and calls[0] == 2:
                out = out.clone()
                out[0] = float("nan")
        return out
    PlaitModule.forward = forward
    from plait.cli import app
    app()
"""


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_ddp_processes_decide_together(tiny_config, tmp_path, policy):
    """Only rank 1 sees a NaN loss; without a shared decision rank 0 would wait forever
    in the gradient all-reduce (the timeout would fail the test).

    The "skip" run is also the DDP smoke test (`plait train` with two CPU processes over
    gloo; each launch costs two interpreter starts, so one run checks both): it goes
    through the real command line, because Lightning's DDP launcher re-runs that command
    line for the second process."""
    raw = tiny_config(
        tmp_path / "runs",
        "ddp",
        training={
            "epochs": 1,
            "strategy": "ddp",
            "devices": 2,
            "accelerator": "cpu",
            "on_nonfinite": policy,
        },
        evaluation={"report": True},
    )
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    script = tmp_path / "nan_on_rank_1.py"
    script.write_text(textwrap.dedent(_NAN_ON_RANK_1))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    for key in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, str(script), "train", str(config_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        # two interpreter starts and a gloo rendezvous: ~30 s on a quiet machine, but under
        # `pytest -n 2` beside another worker's heavy test it has taken over 180 s in CI
        timeout=420,
    )
    output = done.stdout + done.stderr
    flat = " ".join(output.split())
    run = tmp_path / "runs" / "ddp"
    if policy == "raise":
        assert done.returncode != 0, output[-4000:]
        assert "training loss is not finite at epoch 1 of 1, training batch 2" in flat
        assert "on another DDP process" in flat
        assert not (run / "model").exists()
    else:
        assert done.returncode == 0, output[-4000:]
        metrics = json.loads((run / "report" / "metrics.json").read_text())
        assert metrics["nonfinite_batches_skipped"] == 1
        assert _all_finite(run / "model")
        assert (run / "report" / "report.html").is_file()
        assert metrics["epochs"] == 1 and metrics["n"] == 16
        # rank 1 trained too, but only rank 0 reports and saves
        assert output.count("model:  ") == 1, output[-4000:]
        checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert checkpoints == ["best.ckpt", "last.ckpt"]
        last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        # the 36 training rows are sharded: 18 per process, batch 16 -> 2 steps (3 on one
        # process); a skipped batch still counts as a step, without changing the weights
        assert last["global_step"] == 2
        frame = plait.load(run / "model").predict(Path(raw["data"]["test"]))
        assert len(frame) == 16


def test_aligned_run_stops_on_a_nan_loss_naming_the_batch(tiny_config, tmp_path, monkeypatch):
    from plait.tasks.alignment_objective import AlignmentObjective

    real = AlignmentObjective.forward
    calls = [0]

    def forward(self, model, inputs, presence):
        terms = real(self, model, inputs, presence)
        if model.training:
            calls[0] += 1
            if calls[0] == 2:
                terms = {**terms, "loss": terms["loss"] * float("nan")}
        return terms

    monkeypatch.setattr(AlignmentObjective, "forward", forward)
    raw = tiny_config(tmp_path, "aligned-nan", alignment={"pair": ["image", "caption"], "dim": 16})
    with pytest.raises(NonFiniteError) as info:
        fit(config_of(raw))
    message = str(info.value)
    assert "training loss is nan at epoch 1 of 2, training batch 2 of 3" in message
    assert "rows in the batch (ids: " in message
    assert not (tmp_path / "aligned-nan" / "model").exists()
