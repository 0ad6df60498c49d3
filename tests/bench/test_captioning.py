"""`bench/captioning.py --quick` runs end to end and records its rows: the scratch row and
the richest pretraining row (the hub decoder has its own tests in tests/captioning; all
five rows take about 4 minutes here, too long for the suite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_records_every_row(tmp_path):
    out = tmp_path / "cap.json"
    command = [sys.executable, str(ROOT / "bench" / "captioning.py"), "--quick"]
    command += ["--rows", "scratch,clip+itm+mlm+mrm"]
    done = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["row"] for r in rows] == [
        "transformer (scratch)",
        "transformer from clip+itm+mlm+mrm",
    ]
    for row in rows:
        for split in ("test", "test_heldout"):
            assert set(row[split]) >= {"bleu_4", "rouge_l", "cider_d", "example"}
            assert all(0.0 <= row[split][m] <= 1.0 for m in ("bleu_4", "rouge_l"))
            assert row[split]["cider_d"] >= 0.0
    # every fine-tuned row started from a pretrained model whose image tower was copied
    assert rows[1]["init_from_towers"] == {"image": "image"}
    assert 0.0 <= rows[1]["pretrain_R@1"] <= 1.0
    assert "| transformer from clip+itm+mlm+mrm |" in done.stdout
