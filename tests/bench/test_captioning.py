"""`bench/captioning.py --quick` runs every row end to end and records it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_records_every_row(tmp_path):
    out = tmp_path / "cap.json"
    command = [sys.executable, str(ROOT / "bench" / "captioning.py"), "--quick"]
    done = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["row"] for r in rows] == [
        "transformer (scratch)",
        "hub tiny GPT-2 (random init)",
        "transformer from clip",
        "transformer from clip+itm+mlm",
        "transformer from clip+itm+mlm+mrm",
    ]
    for row in rows:
        for split in ("test", "test_heldout"):
            assert set(row[split]) >= {"bleu_4", "rouge_l", "cider_d", "example"}
            assert all(0.0 <= row[split][m] <= 1.0 for m in ("bleu_4", "rouge_l"))
            assert row[split]["cider_d"] >= 0.0
    # every fine-tuned row started from a pretrained model whose image tower was copied
    assert all(r["init_from_towers"] == {"image": "image"} for r in rows[2:])
    assert all(0.0 <= r["pretrain_R@1"] <= 1.0 for r in rows[2:])
    assert "| transformer from clip+itm+mlm+mrm |" in done.stdout
