"""Run comparisons: a table of runs by metric, `comparison.html` (self-contained, best
value per column in bold) with its `comparison.json` twin, and a rich table for the
terminal."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from plait.evaluation.html import (
    HtmlTable,
    Image,
    Note,
    Section,
    figure,
    fmt,
    img,
    mpl_text,
    number,
    render_page,
)
from plait.evaluation.metrics import to_jsonable
from plait.evaluation.report_alignment import alignment_columns
from plait.utils.io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from rich.table import Table

#: Headline columns of a comparison, in display order.
HEADLINE = (
    "accuracy",
    "balanced_accuracy",
    "subset_accuracy",
    "f1_macro",
    "auroc",
    "log_loss",
    "hamming_loss",
    "mae",
    "rmse",
    "r2",
)
#: Detail keys of the metric dicts: never comparison columns (too many, or not scores).
_DETAIL = {
    "n",
    "threshold",
    "precision_macro",
    "recall_macro",
    "precision_micro",
    "recall_micro",
    "f1_micro",
}
_HIGHER = {"accuracy", "balanced_accuracy", "subset_accuracy", "f1_macro", "auroc", "r2"}
_LOWER_HINTS = ("loss", "mae", "rmse", "mse", "error", "seconds", "time")
_BAR_METRICS = ("accuracy", "balanced_accuracy", "subset_accuracy", "f1_macro")


#: Run facts of metrics.json (not scores of a split): compared whichever split is chosen.
RUN_FACTS = ("train_seconds", "epochs", "threads", "nonfinite_batches_skipped")

Split = Literal["valid", "test"]

#: What a comparison on each split means, said above its table.
SPLIT_NOTES = {
    "valid": "scores on each run's validation split: the split to choose a run on",
    "test": "scores on each run's test split: for the final report of a run already "
    "chosen, not for choosing one (that would fit the choice to the test rows)",
}


def split_metrics(metrics: dict[str, Any], split: Split) -> dict[str, Any] | None:
    """A run's scores on `split` with its facts (`params`, `train_seconds`, ...), or None
    when the run has no scores on that split (no such split, or saved by a version that
    kept only the final split's scores).

    metrics.json holds the final split's scores at the top level (`split`: `test`, or
    `valid` when there is no test split) and, beside test scores, the validation scores
    under `valid`.
    """
    facts = {k: v for k, v in metrics.items() if k in RUN_FACTS or k.startswith("params")}
    if metrics.get("split") == split:
        scores = {k: v for k, v in metrics.items() if k != "valid"}
    elif isinstance(metrics.get(split), dict):
        scores = metrics[split]
    else:
        return None
    return {**scores, **facts}


def runs_on_split(
    runs: dict[str, dict[str, Any]], split: Split
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each run's metrics on `split` (`split_metrics`), and the names of the runs that
    have none there (their scores are left empty; their facts are kept)."""
    chosen: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for name, metrics in runs.items():
        scores = split_metrics(metrics, split)
        if scores is None:
            missing.append(name)
            scores = {k: v for k, v in metrics.items() if k in RUN_FACTS or k.startswith("params")}
        chosen[name] = scores
    return chosen, missing


def comparison_table(runs: dict[str, dict[str, Any]], split: Split | None = None) -> pd.DataFrame:
    """One row per run: headline metrics present in any run, then alignment columns
    (`image->text R@1`, `mean R@5`, `zeroshot image accuracy`, ...: `alignment_columns`),
    then scalar extras such as `params` or `train_seconds` (any other numeric top-level
    key that is not a detail). A run lacking a column has NaN there.

    `split` (`valid` or `test`) compares the runs' scores on that split (`split_metrics`);
    None takes each dict as it is.
    """
    if split is not None:
        runs = runs_on_split(runs, split)[0]
    headline = [c for c in HEADLINE if any(number(m.get(c)) is not None for m in runs.values())]
    derived = {name: alignment_columns(m) for name, m in runs.items()}
    aligned = list(dict.fromkeys(c for columns in derived.values() for c in columns))
    extras: list[str] = []
    for metrics in runs.values():
        for key, value in metrics.items():
            if key in HEADLINE or key in _DETAIL or key in extras or key in aligned:
                continue
            if number(value) is not None:
                extras.append(key)
    columns = headline + aligned + extras
    data = {
        name: {c: derived[name][c] if c in derived[name] else number(m.get(c)) for c in columns}
        for name, m in runs.items()
    }
    frame = pd.DataFrame.from_dict(data, orient="index", columns=columns, dtype=float)
    frame.index.name = "run"
    return frame


def write_comparison_report(
    folder: Path,
    runs: dict[str, dict[str, Any]],
    title: str,
    notes: str = "",
    split: Split | None = None,
) -> Path:
    """Write `comparison.json` and `comparison.html` (best value per column in bold, a
    grouped bar chart of accuracy/F1, mean R@1 and zero-shot accuracy per run), on
    `split` as in `comparison_table`. Returns the html path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = comparison_table(runs, split)
    best = _best(table)
    atomic_write_json(
        folder / "comparison.json",
        to_jsonable(
            {
                "title": title,
                "notes": notes,
                "split": split,
                "columns": list(table.columns),
                "rows": {run: row.to_dict() for run, row in table.iterrows()},
                "best": {col: sorted(winners) for col, winners in best.items()},
            }
        ),
    )
    rows, bold = [], set()
    for r, (run, row) in enumerate(table.iterrows()):
        rows.append([str(run)] + [fmt(row[column]) for column in table.columns])
        bold |= {
            (r, c + 1) for c, column in enumerate(table.columns) if run in best.get(column, ())
        }
    sections = [Section(None, [Note(notes, css="notes")])] if notes else []
    if split is not None:
        sections.append(Section(None, [Note(SPLIT_NOTES[split])]))
    runs_table = HtmlTable(["run", *map(str, table.columns)], rows, bold)
    sections.append(Section("Runs", [Note("best value per column in bold"), runs_table]))
    chart = _comparison_chart(table)
    if chart:
        sections.append(Section("Scores per run", [chart]))
    path = folder / "comparison.html"
    atomic_write_text(path, render_page(title, sections))
    return path


def render_rich_table(df: pd.DataFrame, title: str) -> Table:
    """The comparison as a rich table for the terminal, best values in bold."""
    from rich.markup import escape
    from rich.table import Table

    best = _best(df)
    table = Table(title=escape(title))
    table.add_column(escape(df.index.name or "run"), style="cyan")
    for column in df.columns:
        table.add_column(escape(str(column)), justify="right")
    for run, row in df.iterrows():
        cells = [escape(str(run))]
        for column in df.columns:
            text = fmt(row[column])
            cells.append(f"[bold]{text}[/bold]" if run in best.get(column, ()) else text)
        table.add_row(*cells)
    return table


def _best(table: pd.DataFrame) -> dict[str, set[str]]:
    """Runs holding the best value of each column whose direction is known (ties all win);
    a column only one run has (an alignment score beside classification runs) has none."""
    best: dict[str, set[str]] = {}
    for column in table.columns:
        direction = _direction(str(column))
        values = table[column].dropna()
        if direction == 0 or len(values) < 2:
            continue
        target = values.max() if direction > 0 else values.min()
        best[column] = {
            str(run) for run, v in values.items() if math.isclose(v, target, rel_tol=1e-12)
        }
    return best


def _direction(column: str) -> int:
    """+1 if higher is better, -1 if lower is, 0 when it is a matter of taste (`params`)."""
    if column in _HIGHER or column.startswith(("f1", "precision", "recall", "accuracy")):
        return 1
    if "R@" in column or column.endswith(("accuracy", "MRR", "mrr")):  # alignment columns
        return 1
    return -1 if any(hint in column.lower() for hint in _LOWER_HINTS) else 0


def _comparison_chart(table: pd.DataFrame) -> Image | None:
    candidates = [*_BAR_METRICS, "mean R@1"] + [
        str(c) for c in table.columns if str(c).startswith("zeroshot ")
    ]
    metrics = [c for c in candidates if c in table and table[c].notna().any()]
    if not metrics and "r2" in table and table["r2"].notna().any():
        metrics = ["r2"]
    if not metrics or table.empty:
        return None
    runs = [str(r) for r in table.index]
    fig, ax = figure(max(5.0, 0.9 * len(runs) * max(1, len(metrics)) * 0.45 + 2.5), 4.0)
    width = 0.8 / len(metrics)
    for i, metric in enumerate(metrics):
        positions = np.arange(len(runs)) + (i - (len(metrics) - 1) / 2) * width
        ax.bar(positions, table[metric].fillna(0.0).to_numpy(), width=width, label=metric)
    ax.set_xticks(range(len(runs)), [mpl_text(r) for r in runs], rotation=30, ha="right")
    ax.set_ylim(0, max(1.0, float(np.nanmax(table[metrics].to_numpy(dtype=float)))))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return img(fig, "scores per run")
