"""Evaluation: task metrics as JSON-ready dicts, and self-contained HTML reports."""

from plait.evaluation.metrics import (
    classification_metrics,
    compute_metrics,
    multilabel_metrics,
    regression_metrics,
    to_jsonable,
)
from plait.evaluation.report import (
    comparison_table,
    load_history,
    render_rich_table,
    write_comparison_report,
    write_report,
)

__all__ = [
    "classification_metrics",
    "comparison_table",
    "compute_metrics",
    "load_history",
    "multilabel_metrics",
    "regression_metrics",
    "render_rich_table",
    "to_jsonable",
    "write_comparison_report",
    "write_report",
]
