"""`bench/vqa.py --quick` runs end to end: one head, then one more seed of the best, every
row with its accuracies per question family and CPU minutes, batches grouped by scene
(`--group`; two training runs: every head is covered by
tests/vqa; the full bench takes about an hour on 2 shared cores, see bench/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_records_every_row(tmp_path):
    out = tmp_path / "vqa.json"
    command = [sys.executable, str(ROOT / "bench" / "vqa.py"), "--quick"]
    command += ["--heads", "relation", "--best-seeds", "1", "--group", "3", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["head"], r["seed"]) for r in rows] == [("relation", 0), ("relation", 1)]
    for row in rows:
        for key in ("accuracy", "non_relational", "relational", "valid_accuracy"):
            assert 0.0 <= row[key] <= 1.0
        assert set(row["per_type"]) == {
            "shape", "horizontal", "vertical", "closest", "furthest", "count",
        }  # fmt: skip
        assert row["epochs_run"] == 1 and row["cpu_minutes"] > 0
    assert "| relation | 0 |" in done.stdout and "| relation | 1 |" in done.stdout
