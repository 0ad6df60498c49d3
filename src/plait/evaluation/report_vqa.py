"""The question-answering part of a run report: accuracy per question type (test and
validation side by side) and a table of answered test questions."""

from __future__ import annotations

from typing import Any

from plait.evaluation.html import HtmlTable, Note, Section, fmt


def vqa_sections(metrics: dict[str, Any]) -> list[Section]:
    """Per-type accuracy and examples from `VqaPredictor.evaluate`'s metrics (with `valid`
    beside them after a run)."""
    columns = [(str(metrics.get("split") or "this split"), metrics)]
    if isinstance(metrics.get("valid"), dict):
        columns.append(("valid", metrics["valid"]))
    head = ["type", "value"] + [f"{name} {what}" for name, _ in columns for what in ("n", "acc.")]
    rows = [
        ["all", "", *(c for _, m in columns for c in (fmt(m.get("n")), fmt(m.get("accuracy"))))]
    ]
    per_type = metrics.get("per_type") or {}
    for column, values in per_type.items():
        for value in values:
            cells: list[str] = []
            for _, m in columns:
                found = ((m.get("per_type") or {}).get(column) or {}).get(value) or {}
                cells += [fmt(found.get("n")), fmt(found.get("accuracy"))]
            rows.append([column, value, *cells])
    blocks: list[Any] = [HtmlTable(head, rows)]
    unseen = metrics.get("unseen_answers")
    if unseen:
        blocks.append(Note(f"{unseen} expected answer(s) were never seen in training: scored "
                           "wrong, the model cannot give them.", "notes"))  # fmt: skip
    sections = [Section("Accuracy per question type", blocks)]
    examples = metrics.get("examples") or []
    if examples:
        table = HtmlTable(
            ["id", "question", "answer", "expected"],
            [[str(e.get("id")), str(e.get("question")), str(e.get("answer")),
              str(e.get("expected"))] for e in examples],
        )  # fmt: skip
        sections.append(Section("Answered questions", [table]))
    return sections
