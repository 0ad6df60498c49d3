"""`bench/first_try.py --quick` runs end to end and writes a report that says something."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_runs_and_a_summary(tmp_path):
    out = tmp_path / "first-try.json"
    command = [
        sys.executable,
        str(ROOT / "bench" / "first_try.py"),
        "--quick",
        "--datasets",
        "shapes,digits,demo",
        "--digits",
        str(tmp_path / "absent"),
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [(r["data"], r["default"]) for r in report["runs"]] == [
        ("shapes", True),
        ("shapes", False),
        ("demo", True),
        ("demo", False),
    ]
    assert report["notes"] == [f"digits skipped: no {tmp_path / 'absent' / 'train.csv'}"]
    for run in report["runs"]:
        assert 0.0 <= run["valid"] <= 1.0 and 0.0 <= run["test"] <= 1.0
    by_data = {row["data"]: row for row in report["summary"]}
    assert set(by_data) == {"shapes", "demo"}
    for name, row in by_data.items():
        mine = [r for r in report["runs"] if r["data"] == name]
        best = max(mine, key=lambda r: r["valid"])  # chosen on validation, never on test
        assert row["best variant (on valid)"] == best["variant"]
        assert row["best test"] == best["test"]
        default = next(r for r in mine if r["default"])
        assert row["gap (points)"] == round(100 * (best["test"] - default["test"]), 1)
    assert "| shapes |" in done.stdout

    # --pick reruns one row; --append keeps every other row measured before
    again = [*command[:2], "--quick", "--datasets", "shapes", "--pick", "1", "--append"]
    again += ["--threads", "1", "--out", str(out)]
    done = subprocess.run(again, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rerun = json.loads(out.read_text())
    before = {(r["data"], r["variant"]): r for r in report["runs"]}
    after = {(r["data"], r["variant"]): r for r in rerun["runs"]}
    assert set(after) == set(before) and len(rerun["runs"]) == len(report["runs"])
    picked = ("shapes", "demo's image tower (dim 64, 3 blocks, max)")
    last = rerun["runs"][-1]
    assert (last["data"], last["variant"]) == picked  # measured now, after the kept rows
    assert all(after[key] == before[key] for key in after if key != picked)
    assert rerun["notes"] == report["notes"]  # not about shapes: kept
