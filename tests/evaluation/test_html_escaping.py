"""Every HTML page Plait writes escapes user-supplied text: a run name, class name, metric
name, modality, caption or query holding `<script>` shows as text and never runs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plait.evaluation import (
    classification_metrics,
    multilabel_metrics,
    regression_metrics,
    robustness_section,
    write_comparison_report,
    write_report,
)
from plait.evaluation.html import environment
from plait.retrieval.search import contact_sheet

EVIL = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"


def _only_escaped(text: str) -> None:
    assert "<script" not in text.lower()
    assert ESCAPED in text


def _alignment_metrics() -> dict:
    zeroshot = {
        "accuracy": 0.5,
        "classes": [EVIL, "dog"],
        "confusion": [[1, 0], [1, 0]],
        "per_class": {EVIL: {"precision": 0.5, "recall": 1.0, "f1": 0.67, "support": 1}},
    }
    block = {"R@1": 0.5, "median_rank": 1.0, "mean_rank": 1.5, "mrr": 0.75, "queries": 2}
    return {
        "retrieval": {f"{EVIL}->text": block},
        "relevance": "pair",
        "zeroshot": {EVIL: zeroshot},
        "zeroshot_before": {EVIL: zeroshot},
        "warnings": [EVIL],
        EVIL: 1.0,
    }


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression", "alignment"])
def test_run_reports_escape_every_name(tmp_path: Path, task: str) -> None:
    if task == "classification":
        y = np.array([0, 1, 1, 0])
        metrics = classification_metrics(y, np.eye(2)[[0, 1, 0, 0]] * 0.8 + 0.1, [EVIL, "b"])
    elif task == "multilabel":
        y = np.array([[1, 0], [0, 1]])
        metrics = multilabel_metrics(y, np.array([[0.8, 0.3], [0.2, 0.6]]), [EVIL, "b"])
    elif task == "regression":
        y = np.array([[1.0], [2.0], [3.0]])
        metrics = regression_metrics(y, y * 1.1, [EVIL])
    else:
        metrics = _alignment_metrics()
    history = pd.DataFrame({"epoch": [0, 1], "step": [1, 2], f"train/{EVIL}": [1.0, 0.5]})
    skipped = {"total": 1, "per_split": {EVIL: 1}, "list": EVIL}
    text = write_report(
        tmp_path,
        {**metrics, "skipped_rows": skipped, "warnings": [EVIL]},
        task=task,
        history=history,
        title=f"run {EVIL}",
        config_yaml=f"name: {EVIL}\n",
    ).read_text()
    _only_escaped(text)
    assert text.count(ESCAPED) >= 5  # title, warning, skipped rows, config, a name


def test_comparison_report_escapes_run_names_and_notes(tmp_path: Path) -> None:
    runs = {EVIL: {"accuracy": 0.8, "n": 4}, "other": {"accuracy": 0.6, "n": 4}}
    text = write_comparison_report(tmp_path, runs, title=EVIL, notes=EVIL).read_text()
    _only_escaped(text)
    assert f"<td>{ESCAPED}</td>" in text and f"<h1>{ESCAPED}</h1>" in text


def test_robustness_section_escapes_condition_names(tmp_path: Path) -> None:
    frame = pd.DataFrame({"accuracy": [0.9, 0.5]}, index=["clean", f"missing:{EVIL}"])
    frame.index.name = "condition"
    frame["drop_vs_clean"] = [0.0, 0.4]
    heading, body = robustness_section(frame)
    _only_escaped(body)
    text = write_report(
        tmp_path, {"accuracy": 0.9}, task="classification", extra_sections=[(heading, body)]
    ).read_text()
    _only_escaped(text)


def test_contact_sheet_escapes_query_ids_and_captions(tmp_path: Path) -> None:
    hits = pd.DataFrame(
        {
            "rank": [1, 2],
            "id": [EVIL, "b"],
            "score": [0.9, 0.5],
            "image": [None, str(tmp_path / f"{EVIL}.png")],
            "caption": [EVIL, "a dog"],
        }
    )
    text = contact_sheet(hits, tmp_path / "sheet.html", EVIL, "image").read_text()
    _only_escaped(text)
    assert f"caption: {ESCAPED}" in text and f"id {ESCAPED}" in text
    assert re.search(r"cannot read: .*&lt;script&gt;", text)  # the unreadable file's name


def test_the_templates_autoescape() -> None:
    template = environment().from_string("<p>{{ value }}</p>")
    assert template.render(value=EVIL) == f"<p>{ESCAPED}</p>"
