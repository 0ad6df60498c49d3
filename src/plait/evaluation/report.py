"""Run reports, as files a person can open anywhere.

`report.html` is self-contained (inline CSS, plots as base64 PNG) so it survives being
mailed, attached to a ticket or opened offline; `metrics.json` is written atomically
beside it for programs. The page is a list of `Section`s rendered by the Jinja2
templates in `templates/`, which autoescape every user-supplied string (class names, run
names, titles): a class called `<b>&x` must show as text, not markup.

Alignment sections live in `report_alignment`, run comparisons in `comparison`, the
HTML and plotting helpers in `html`; the comparison names are re-exported from here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from plait.evaluation.comparison import (
    HEADLINE,
    comparison_table,
    render_rich_table,
    write_comparison_report,
)
from plait.evaluation.html import (
    Block,
    Details,
    HtmlTable,
    Image,
    Note,
    Pre,
    Raw,
    Section,
    Warn,
    confusion_figure,
    figure,
    fmt,
    img,
    mpl_text,
    render_page,
)
from plait.evaluation.metrics import to_jsonable
from plait.evaluation.report_alignment import (
    alignment_columns,
    alignment_sections,
    render_retrieval_table,
)
from plait.evaluation.report_captioning import captioning_sections
from plait.evaluation.report_vqa import vqa_sections
from plait.utils.io import atomic_write_json, atomic_write_text

#: Re-exported so `from plait.evaluation.report import ...` keeps working.
__all__ = [
    "HEADLINE",
    "comparison_table",
    "load_history",
    "render_retrieval_table",
    "render_rich_table",
    "write_comparison_report",
    "write_report",
]

_MAX_BARS = 60
#: Last segment of a logged column that names a loss term without saying "loss"
#: (alignment runs log `train/clip`, `train/itm`, `train/mlm` beside `train/loss`).
_LOSS_TERMS = {"clip", "siglip", "itc", "itm", "mlm", "mim", "contrastive", "caption", "lm"}


# ----------------------------------------------------------------------------- run report


def write_report(
    folder: Path,
    metrics: dict[str, Any],
    *,
    task: str,
    history: pd.DataFrame | None = None,
    title: str = "Plait report",
    extra_sections: list[tuple[str, str]] | None = None,
    config_yaml: str | None = None,
) -> Path:
    """Write `metrics.json` and a self-contained `report.html` into `folder`.

    `task` is "classification", "multilabel", "regression", "alignment" (a retrieval
    block, optional zero-shot blocks; see `alignment_sections`) or "captioning" (caption
    metrics and a sheet of examples; see `captioning_sections`) or "vqa" (accuracy per
    question type; see `vqa_sections`). `history` is a Lightning
    CSVLogger table (see `load_history`); `extra_sections` are (heading, html) pairs
    inserted verbatim, so callers must escape their own content. A `warnings` list in
    `metrics` is shown in a box above everything else, and `skipped_rows` (how many bad
    rows were left out, per split, and where they are listed) in one below it. Returns
    the path of `report.html`; the page is rendered from `templates/report.html`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clean = to_jsonable(metrics)
    atomic_write_json(folder / "metrics.json", clean)

    meta = f"task: {task}" + (f" · {clean['n']} samples" if "n" in clean else "")
    sections = _warnings_box(clean.get("warnings"))
    sections += _skipped_rows_note(clean.get("skipped_rows"))
    valid = clean.get("valid")
    if isinstance(valid, dict):  # a run with a test split: validation first, test apart
        sections.append(Section("Validation: choose runs on these", [_summary_table(valid)]))
        summary = "Test: held out, scored once after training"
    else:
        summary = "Summary"
    sections.append(Section(summary, [_summary_table(clean)]))
    if history is not None:
        curves: list[Block] = list(_learning_curves(history))
        if curves:
            sections.append(Section("Learning curves", curves))
    if task == "classification":
        sections += _classification_sections(clean)
    elif task == "multilabel":
        sections += _per_name_sections(clean.get("per_label") or {}, "Per-label")
    elif task == "regression":
        sections += _regression_sections(clean)
    elif task == "alignment":
        sections += alignment_sections(clean)
    elif task == "captioning":
        sections += captioning_sections(clean)
    elif task == "vqa":
        sections += vqa_sections(clean)
    for heading, body in extra_sections or []:
        sections.append(Section(heading, [Raw(Markup(body))]))  # the caller's own HTML
    if config_yaml:
        sections.append(Section("Configuration", [Details("Resolved config", Pre(config_yaml))]))
    path = folder / "report.html"
    atomic_write_text(path, render_page(title, sections, meta=meta))
    return path


def _warnings_box(warnings: Any) -> list[Section]:
    if not warnings:
        return []
    items = [warnings] if isinstance(warnings, str) else list(warnings)
    return [Section(None, [Warn("Warnings", items=[str(w) for w in items])])]


def _skipped_rows_note(skipped: Any) -> list[Section]:
    """`metrics["skipped_rows"]` ({total, per_split, list}) -> a box saying how many rows
    were left out as bad, from which split, and where they are listed."""
    if not isinstance(skipped, dict) or not skipped.get("total"):
        return []
    total = int(skipped["total"])
    splits = ", ".join(f"{split} {n}" for split, n in (skipped.get("per_split") or {}).items())
    where = f" Every one is listed, with its file, row, column and reason, in {skipped['list']}."
    text = (
        f"{total} {'row was' if total == 1 else 'rows were'} skipped as bad"
        + (f" ({splits})" if splits else "")
        + "; training and these metrics leave them out."
        + (where if skipped.get("list") else "")
    )
    return [Section(None, [Warn("Skipped rows", text=text)])]


def _summary_table(metrics: dict[str, Any]) -> HtmlTable:
    rows = [
        (key, value)
        for key, value in metrics.items()
        if key != "task" and (value is None or isinstance(value, int | float | str))
    ]
    rows += list(alignment_columns(metrics).items())  # {} unless an alignment run
    return HtmlTable(["metric", "value"], [[k, fmt(v)] for k, v in rows])


def _classification_sections(metrics: dict[str, Any]) -> list[Section]:
    parts: list[Section] = []
    names = metrics.get("class_names") or list((metrics.get("per_class") or {}).keys())
    matrix = metrics.get("confusion_matrix")
    if matrix:
        fig = confusion_figure(np.asarray(matrix), names)
        note = Note("rows: true, columns: predicted")
        parts.append(Section("Confusion matrix", [note, img(fig, "confusion matrix")]))
    return parts + _per_name_sections(metrics.get("per_class") or {}, "Per-class")


def _per_name_sections(per_name: dict[str, dict[str, Any]], kind: str) -> list[Section]:
    """F1 bar chart plus the full precision/recall/F1/support table."""
    if not per_name:
        return []
    items = list(per_name.items())
    shown = items
    caption = f"{kind} F1"
    if len(items) > _MAX_BARS:
        shown = sorted(items, key=lambda kv: kv[1].get("f1") or 0.0)[:_MAX_BARS]
        caption += f" (the {_MAX_BARS} lowest of {len(items)})"
    fig, ax = figure(6.5, max(2.0, 0.28 * len(shown) + 1.0))
    ax.barh(range(len(shown)), [v.get("f1") or 0.0 for _, v in shown], color="#4c72b0")
    ax.set_yticks(range(len(shown)), [mpl_text(name) for name, _ in shown])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    columns = [
        c
        for c in ("precision", "recall", "f1", "support", "auroc")
        if any(c in v for _, v in items)
    ]
    rows = [[name] + [fmt(v.get(c)) for c in columns] for name, v in items]
    return [Section(caption, [img(fig, caption), HtmlTable(["name", *columns], rows)])]


def _regression_sections(metrics: dict[str, Any]) -> list[Section]:
    parts: list[Section] = []
    scatter = metrics.get("scatter") or {}
    y_true = np.asarray(scatter.get("y_true") or [], dtype=float)
    y_pred = np.asarray(scatter.get("y_pred") or [], dtype=float)
    names = metrics.get("target_names") or []
    if y_true.size and y_true.shape == y_pred.shape:
        y_true, y_pred = y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)
        count = min(y_true.shape[1], 6)
        fig, axes = figure(4.0 * count, 4.0, ncols=count)
        for j, ax in enumerate(np.atleast_1d(axes)):
            ax.scatter(y_true[:, j], y_pred[:, j], s=8, alpha=0.5, color="#4c72b0")
            lo = float(np.nanmin([y_true[:, j].min(), y_pred[:, j].min()]))
            hi = float(np.nanmax([y_true[:, j].max(), y_pred[:, j].max()]))
            ax.plot([lo, hi], [lo, hi], color="#c44e52", linewidth=1)
            ax.set_title(mpl_text(str(names[j])) if j < len(names) else f"target {j}")
            ax.set_xlabel("true")
            ax.set_ylabel("predicted")
        parts.append(Section("Predicted vs true", [img(fig, "predicted vs true")]))
    per_target = metrics.get("per_target") or {}
    if per_target:
        rows = [[t] + [fmt(v.get(c)) for c in ("mae", "rmse", "r2")] for t, v in per_target.items()]
        parts.append(Section("Per target", [HtmlTable(["target", "mae", "rmse", "r2"], rows)]))
    return parts


def _learning_curves(history: pd.DataFrame) -> list[Image]:
    """Loss columns on one chart, ranks on another, every other logged metric on a third,
    all per epoch. A column is a loss when its name says so or names a loss term
    (`train/clip`, `train/itm`, ...: `_LOSS_TERMS`)."""
    if history is None or history.empty:
        return []
    x = next((c for c in ("epoch", "step") if c in history and history[c].notna().any()), None)
    frame = history.apply(pd.to_numeric, errors="coerce")
    xs = frame[x] if x else pd.Series(np.arange(len(frame)), index=frame.index)
    columns = [c for c in frame.columns if c not in ("epoch", "step") and frame[c].notna().any()]
    losses = [c for c in columns if _is_loss(str(c))]
    ranks = [c for c in columns if c not in losses and "rank" in str(c).lower()]
    others = [c for c in columns if c not in losses and c not in ranks]
    images = []
    for group, label in ((losses, "loss"), (others, "metric"), (ranks, "rank")):
        if not group:
            continue
        fig, ax = figure(7.0, 3.8)
        for column in group:
            data = pd.DataFrame({"x": xs, "y": frame[column]}).dropna()
            if x == "epoch":  # step-level values are averaged per epoch
                data = data.groupby("x", as_index=False)["y"].mean()
            ax.plot(data["x"], data["y"], marker="o", markersize=3, label=mpl_text(str(column)))
        ax.set_xlabel(x or "row")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        images.append(img(fig, f"learning curves ({label})"))
    return images


def _is_loss(column: str) -> bool:
    lower = column.lower()
    return "loss" in lower or lower.rsplit("/", 1)[-1] in _LOSS_TERMS


# ----------------------------------------------------------------------------- history


def load_history(log_dir: Path) -> pd.DataFrame | None:
    """Read the newest Lightning CSVLogger `metrics.csv` under `log_dir` (or `log_dir`
    itself if it is that file); None when there is none or it cannot be read."""
    log_dir = Path(log_dir)
    if log_dir.is_file():
        candidates = [log_dir]
    elif log_dir.is_dir():
        candidates = list(log_dir.rglob("metrics.csv"))
    else:
        return None
    if not candidates:
        return None
    newest = max(candidates, key=lambda p: (p.stat().st_mtime_ns, _version(p)))
    try:
        frame = pd.read_csv(newest)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    return None if frame.empty else frame


def _version(path: Path) -> int:
    """`version_N` number of a Lightning log folder, breaking mtime ties."""
    for part in reversed(path.parts):
        match = re.fullmatch(r"version_(\d+)", part)
        if match:
            return int(match.group(1))
    return -1
