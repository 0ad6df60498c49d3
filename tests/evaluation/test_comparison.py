"""Runs are compared on validation by default; test scores only when asked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from plait.evaluation.comparison import (
    comparison_table,
    runs_on_split,
    split_metrics,
    write_comparison_report,
)

# what metrics.json holds: test scores at the top level, validation scores beside them
WITH_TEST = {
    "split": "test",
    "accuracy": 0.9,
    "n": 16,
    "valid": {"split": "valid", "accuracy": 0.6, "n": 12},
    "params": 1000,
    "train_seconds": 2.0,
}
# no test split: the validation scores are the top level
VALID_ONLY = {"split": "valid", "accuracy": 0.7, "n": 12, "params": 500, "train_seconds": 1.0}
# saved before validation scores were kept: test only
OLD = {"split": "test", "accuracy": 0.95, "n": 16, "params": 10}


def test_split_metrics_picks_the_split_and_keeps_the_run_facts() -> None:
    valid = split_metrics(WITH_TEST, "valid")
    assert valid is not None and valid["accuracy"] == 0.6 and valid["n"] == 12
    assert valid["params"] == 1000 and valid["train_seconds"] == 2.0
    test = split_metrics(WITH_TEST, "test")
    assert test is not None and test["accuracy"] == 0.9 and "valid" not in test
    assert split_metrics(VALID_ONLY, "valid")["accuracy"] == 0.7  # type: ignore[index]
    assert split_metrics(VALID_ONLY, "test") is None
    assert split_metrics(OLD, "valid") is None


def test_comparison_on_validation_never_shows_test_scores() -> None:
    runs = {"a": WITH_TEST, "b": VALID_ONLY, "old": OLD}
    table = comparison_table(runs, "valid")
    assert table.loc["a", "accuracy"] == 0.6 and table.loc["b", "accuracy"] == 0.7
    assert np.isnan(table.loc["old", "accuracy"])  # no validation scores: left empty
    assert table.loc["old", "params"] == 10  # its facts still compare
    assert runs_on_split(runs, "valid")[1] == ["old"]

    test = comparison_table(runs, "test")
    assert test.loc["a", "accuracy"] == 0.9 and test.loc["old", "accuracy"] == 0.95
    assert np.isnan(test.loc["b", "accuracy"])


def test_comparison_report_says_which_split(tmp_path: Path) -> None:
    html = write_comparison_report(tmp_path, {"a": WITH_TEST, "b": VALID_ONLY}, "t", split="valid")
    text = html.read_text()
    assert "validation split: the split to choose a run on" in text
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["split"] == "valid" and data["rows"]["a"]["accuracy"] == 0.6
    assert data["best"]["accuracy"] == ["b"]
