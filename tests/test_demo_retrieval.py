"""`plait demo retrieval` end to end at a tiny size: train, index, search, zero-shot."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from plait.cli import app
from plait.demo_retrieval import QUERIES, run_retrieval_demo


def test_retrieval_demo_runs_every_step(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_retrieval_demo(
        tmp_path, rows=96, epochs=1, k=3, progress=False, show=lambda t: lines.append(str(t))
    )
    assert set(result.searches) == set(QUERIES)
    for hits in result.searches.values():
        assert list(hits["rank"]) == [1, 2, 3]
        assert hits["score"].is_monotonic_decreasing
    assert all(sheet.is_file() and "base64" in sheet.read_text() for sheet in result.sheets)
    assert (tmp_path / "index" / "index.json").is_file()
    assert (result.run_dir / "report" / "report.html").is_file()
    assert result.zeroshot_accuracy is not None and 0.0 <= result.zeroshot_accuracy <= 1.0
    assert any("zero-shot accuracy" in line for line in lines)
    assert (tmp_path / "retrieval.yaml").is_file()


def test_unknown_demo_is_refused(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(app, ["demo", "retreival", "--out", str(tmp_path)])
    assert outcome.exit_code != 0
    assert "choose `fusion` or `retrieval`" in outcome.output
