"""DDP smoke test: `plait train` with two CPU processes (gloo) on the tiny data.

One small run (about 20 s: two Python processes start, then one epoch). It goes through
the real command line, because Lightning's DDP launcher re-runs that command line for
the second process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

import plait


def test_ddp_two_cpu_processes_train_and_rank_zero_saves(tiny_config, tmp_path: Path):
    raw = tiny_config(
        tmp_path / "runs",
        "ddp",
        training={"epochs": 1, "strategy": "ddp", "devices": 2, "accelerator": "cpu"},
    )
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    for key in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)

    done = subprocess.run(
        [sys.executable, "-m", "plait.cli", "train", str(config_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]

    run = tmp_path / "runs" / "ddp"
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "report" / "report.html").is_file()
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["n"] == 16
    # rank 1 trained too, but only rank 0 reports and saves
    assert output.count("model:  ") == 1, output[-4000:]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # the 36 training rows are sharded: 18 per process, batch 16 -> 2 steps (3 on one process)
    assert last["global_step"] == 2
    frame = plait.load(run / "model").predict(Path(raw["data"]["test"]))
    assert len(frame) == 16
