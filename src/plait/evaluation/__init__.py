"""Evaluation: task metrics as JSON-ready dicts, retrieval and zero-shot metrics of a
shared embedding space, self-contained HTML reports, robustness to a missing or noisy
modality, and each modality's contribution to a prediction."""

from plait.evaluation.attribution import Attribution, modality_attribution
from plait.evaluation.comparison import (
    comparison_table,
    render_rich_table,
    write_comparison_report,
)
from plait.evaluation.metrics import (
    classification_metrics,
    compute_metrics,
    multilabel_metrics,
    regression_metrics,
    to_jsonable,
)
from plait.evaluation.report import load_history, write_report
from plait.evaluation.report_alignment import render_retrieval_table
from plait.evaluation.retrieval import (
    cross_modal_retrieval,
    retrieval_metrics,
    zeroshot_metrics,
)
from plait.evaluation.robustness import (
    Condition,
    apply_condition,
    default_conditions,
    evaluate_robustness,
    robustness_section,
)

__all__ = [
    "Attribution",
    "Condition",
    "apply_condition",
    "classification_metrics",
    "comparison_table",
    "compute_metrics",
    "cross_modal_retrieval",
    "default_conditions",
    "evaluate_robustness",
    "load_history",
    "modality_attribution",
    "multilabel_metrics",
    "regression_metrics",
    "render_retrieval_table",
    "render_rich_table",
    "retrieval_metrics",
    "robustness_section",
    "to_jsonable",
    "write_comparison_report",
    "write_report",
    "zeroshot_metrics",
]
