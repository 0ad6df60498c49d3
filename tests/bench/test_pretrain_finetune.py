"""`bench/pretrain_finetune.py --quick` runs every row end to end and records it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_records_every_start(tmp_path):
    out = tmp_path / "pf.json"
    command = [sys.executable, str(ROOT / "bench" / "pretrain_finetune.py"), "--quick"]
    done = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["start"] for r in rows] == [
        "scratch",
        "clip",
        "clip+itm+mlm",
        "clip+itm+mlm+mrm",
    ]
    for row in rows:
        assert 0.0 <= row["test_accuracy"] <= 1.0
    assert all(0.0 <= r["pretrain_R@1"] <= 1.0 for r in rows[1:])
    assert "| clip+itm+mlm+mrm |" in done.stdout
