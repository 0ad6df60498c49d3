"""Run reports and run comparisons, as files a person can open anywhere.

`report.html` and `comparison.html` are self-contained (inline CSS, plots as base64 PNG)
so they survive being mailed, attached to a ticket or opened offline. JSON twins are
written atomically beside them for programs. Every user-supplied string (class names,
run names, titles) is HTML-escaped: a class called `<b>&x` must show as text, not markup.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from plait.evaluation.metrics import to_jsonable
from plait.utils.io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
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
_MAX_BARS = 60
#: Last segment of a logged column that names a loss term without saying "loss"
#: (alignment runs log `train/clip`, `train/itm`, `train/mlm` beside `train/loss`).
_LOSS_TERMS = {"clip", "siglip", "itc", "itm", "mlm", "mim", "contrastive", "caption", "lm"}
#: Zero-shot confusion matrices are drawn up to this many classes (beyond, unreadable).
_MAX_CONFUSION = 100

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}
img{max-width:100%;height:auto;display:block;margin:.5rem 0}
pre{background:#f7f7f7;padding:.8rem;overflow:auto}.meta,.note{color:#666}
.notes{white-space:pre-wrap}
.warn{background:#fff3cd;border:1px solid #e0b400;border-radius:4px;padding:.4rem 1rem;
margin:1rem 0}.warn ul{margin:.3rem 0}
"""


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

    `task` is "classification", "multilabel", "regression" or "alignment" (a retrieval
    block, optional zero-shot blocks; see `_alignment_sections`). `history` is a Lightning
    CSVLogger table (see `load_history`); `extra_sections` are (heading, html) pairs
    inserted verbatim, so callers must escape their own content. A `warnings` list in
    `metrics` is shown in a box above everything else. Returns the path of `report.html`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clean = to_jsonable(metrics)
    atomic_write_json(folder / "metrics.json", clean)

    meta = f"task: {task}" + (f" · {clean['n']} samples" if "n" in clean else "")
    parts = [f"<h1>{_esc(title)}</h1>", f'<p class="meta">{_esc(meta)}</p>']
    parts += _warnings_box(clean.get("warnings"))
    parts += ["<h2>Summary</h2>", _summary_table(clean)]
    if history is not None:
        curves = _learning_curves(history)
        if curves:
            parts += ["<h2>Learning curves</h2>", *curves]
    if task == "classification":
        parts += _classification_sections(clean)
    elif task == "multilabel":
        parts += _per_name_sections(clean.get("per_label") or {}, "Per-label")
    elif task == "regression":
        parts += _regression_sections(clean)
    elif task == "alignment":
        parts += _alignment_sections(clean)
    for heading, body in extra_sections or []:
        parts += [f"<h2>{_esc(heading)}</h2>", body]
    if config_yaml:
        parts.append(
            f"<h2>Configuration</h2><details><summary>Resolved config</summary>"
            f"<pre>{_esc(config_yaml)}</pre></details>"
        )
    path = folder / "report.html"
    atomic_write_text(path, _page(title, parts))
    return path


def _warnings_box(warnings: Any) -> list[str]:
    if not warnings:
        return []
    items = [warnings] if isinstance(warnings, str) else list(warnings)
    lines = "".join(f"<li>{_esc(w)}</li>" for w in items)
    return [f'<div class="warn"><b>Warnings</b><ul>{lines}</ul></div>']


def _summary_table(metrics: dict[str, Any]) -> str:
    rows = [
        (key, value)
        for key, value in metrics.items()
        if key != "task" and (value is None or isinstance(value, int | float | str))
    ]
    return _html_table(["metric", "value"], [[_esc(k), _fmt(v)] for k, v in rows])


def _classification_sections(metrics: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    names = metrics.get("class_names") or list((metrics.get("per_class") or {}).keys())
    matrix = metrics.get("confusion_matrix")
    if matrix:
        fig = _confusion_figure(np.asarray(matrix), names)
        parts += [
            "<h2>Confusion matrix</h2>",
            '<p class="note">rows: true, columns: predicted</p>',
            _img(fig, "confusion matrix"),
        ]
    return parts + _per_name_sections(metrics.get("per_class") or {}, "Per-class")


def _per_name_sections(per_name: dict[str, dict[str, Any]], kind: str) -> list[str]:
    """F1 bar chart plus the full precision/recall/F1/support table."""
    if not per_name:
        return []
    items = list(per_name.items())
    shown = items
    caption = f"{kind} F1"
    if len(items) > _MAX_BARS:
        shown = sorted(items, key=lambda kv: kv[1].get("f1") or 0.0)[:_MAX_BARS]
        caption += f" (the {_MAX_BARS} lowest of {len(items)})"
    fig, ax = _figure(6.5, max(2.0, 0.28 * len(shown) + 1.0))
    ax.barh(range(len(shown)), [v.get("f1") or 0.0 for _, v in shown], color="#4c72b0")
    ax.set_yticks(range(len(shown)), [_mpl(name) for name, _ in shown])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    columns = [
        c
        for c in ("precision", "recall", "f1", "support", "auroc")
        if any(c in v for _, v in items)
    ]
    rows = [[_esc(name)] + [_fmt(v.get(c)) for c in columns] for name, v in items]
    return [f"<h2>{_esc(caption)}</h2>", _img(fig, caption), _html_table(["name", *columns], rows)]


def _regression_sections(metrics: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    scatter = metrics.get("scatter") or {}
    y_true = np.asarray(scatter.get("y_true") or [], dtype=float)
    y_pred = np.asarray(scatter.get("y_pred") or [], dtype=float)
    names = metrics.get("target_names") or []
    if y_true.size and y_true.shape == y_pred.shape:
        y_true, y_pred = y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)
        count = min(y_true.shape[1], 6)
        fig, axes = _figure(4.0 * count, 4.0, ncols=count)
        for j, ax in enumerate(np.atleast_1d(axes)):
            ax.scatter(y_true[:, j], y_pred[:, j], s=8, alpha=0.5, color="#4c72b0")
            lo = float(np.nanmin([y_true[:, j].min(), y_pred[:, j].min()]))
            hi = float(np.nanmax([y_true[:, j].max(), y_pred[:, j].max()]))
            ax.plot([lo, hi], [lo, hi], color="#c44e52", linewidth=1)
            ax.set_title(_mpl(str(names[j])) if j < len(names) else f"target {j}")
            ax.set_xlabel("true")
            ax.set_ylabel("predicted")
        parts += ["<h2>Predicted vs true</h2>", _img(fig, "predicted vs true")]
    per_target = metrics.get("per_target") or {}
    if per_target:
        rows = [
            [_esc(t)] + [_fmt(v.get(c)) for c in ("mae", "rmse", "r2")]
            for t, v in per_target.items()
        ]
        parts += ["<h2>Per target</h2>", _html_table(["target", "mae", "rmse", "r2"], rows)]
    return parts


def _learning_curves(history: pd.DataFrame) -> list[str]:
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
        fig, ax = _figure(7.0, 3.8)
        for column in group:
            data = pd.DataFrame({"x": xs, "y": frame[column]}).dropna()
            if x == "epoch":  # step-level values are averaged per epoch
                data = data.groupby("x", as_index=False)["y"].mean()
            ax.plot(data["x"], data["y"], marker="o", markersize=3, label=_mpl(str(column)))
        ax.set_xlabel(x or "row")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        images.append(_img(fig, f"learning curves ({label})"))
    return images


def _is_loss(column: str) -> bool:
    lower = column.lower()
    return "loss" in lower or lower.rsplit("/", 1)[-1] in _LOSS_TERMS


def _confusion_figure(matrix: np.ndarray, names: Sequence[str]) -> Figure:
    k = len(matrix)
    size = min(max(4.0, 0.55 * k + 2.0), 20.0)
    fig, ax = _figure(size, size)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    labels = [_mpl(str(n)) for n in names] if len(names) == k else [str(i) for i in range(k)]
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(k):
            for j in range(k):
                color = "white" if matrix[i, j] > threshold else "black"
                ax.text(
                    j, i, str(int(matrix[i, j])), ha="center", va="center", color=color, fontsize=8
                )
    return fig


# ----------------------------------------------------------------------------- alignment

#: Rank/score columns of a retrieval table after the R@k ones: (metrics key, header).
_RETRIEVAL_TAIL = (
    ("median_rank", "median rank"),
    ("mean_rank", "mean rank"),
    ("mrr", "MRR"),
    ("queries", "queries"),
    ("skipped", "skipped"),
)
_RELEVANCE_NOTES = {
    "pair": "pair-level: a query's own partner is its only relevant item",
    "label": "label-level: every gallery item with the query's label is relevant",
}


def _alignment_sections(metrics: dict[str, Any]) -> list[str]:
    """Retrieval table and R@k chart, then zero-shot accuracy and confusion matrices.

    Reads `retrieval` ({direction: retrieval_metrics}), `relevance` ("pair" | "label"),
    `zeroshot` and `zeroshot_before` ({modality: zeroshot_metrics}); each is optional.
    """
    parts: list[str] = []
    retrieval = metrics.get("retrieval") or {}
    if retrieval:
        header, rows = _retrieval_rows(retrieval)
        note = _RELEVANCE_NOTES.get(str(metrics.get("relevance")), "")
        note += ("; " if note else "") + (
            "rank of the first relevant item, ties counted against the query"
        )
        parts += [
            "<h2>Retrieval</h2>",
            f'<p class="note">{_esc(note)}</p>',
            _html_table(header, [[_esc(r[0])] + [_fmt(v) for v in r[1:]] for r in rows]),
        ]
        chart = _recall_chart(retrieval)
        if chart:
            parts.append(chart)
    zeroshot = metrics.get("zeroshot") or {}
    if zeroshot:
        parts += _zeroshot_sections(zeroshot, metrics.get("zeroshot_before") or {})
    return parts


def _recall_keys(blocks: Sequence[dict[str, Any]]) -> list[str]:
    """`R@k` keys found in any block, by increasing k."""
    keys = {key for block in blocks for key in block if re.fullmatch(r"R@\d+", str(key))}
    return sorted(keys, key=lambda key: int(key[2:]))


def _retrieval_rows(retrieval: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows (direction, R@k..., median rank, mean rank, MRR, queries[, skipped])."""
    recalls = _recall_keys(list(retrieval.values()))
    tail = [
        (key, label)
        for key, label in _RETRIEVAL_TAIL
        if key != "skipped" or any(b.get("skipped") for b in retrieval.values())
    ]
    header = ["direction", *recalls, *(label for _, label in tail)]
    rows = [
        [
            direction,
            *(block.get(k) for k in recalls),
            *(block.get(k, 0 if k == "skipped" else None) for k, _ in tail),  # absent = 0
        ]
        for direction, block in retrieval.items()
    ]
    return header, rows


def _recall_chart(retrieval: dict[str, dict[str, Any]]) -> str:
    """Grouped bars: R@k on the x axis, one bar per direction."""
    recalls = _recall_keys(list(retrieval.values()))
    if not recalls:
        return ""
    directions = list(retrieval)
    fig, ax = _figure(max(5.0, 1.2 * len(recalls) * len(directions) + 2.0), 3.8)
    width = 0.8 / len(directions)
    for i, direction in enumerate(directions):
        values = [_number(retrieval[direction].get(k)) or 0.0 for k in recalls]
        positions = np.arange(len(recalls)) + (i - (len(directions) - 1) / 2) * width
        bars = ax.bar(positions, values, width=width, label=_mpl(direction))
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(range(len(recalls)), recalls)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("recall")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _img(fig, "recall at k per direction")


def _zeroshot_sections(
    zeroshot: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]]
) -> list[str]:
    """One table (a row per modality, plus its before-training row when known), then per
    modality a confusion matrix and a folded per-class table."""
    columns = ["accuracy", "top5_accuracy", "macro_f1", "chance", "samples"]
    rows = []
    for modality, block in zeroshot.items():
        rows.append([_esc(modality)] + [_fmt(_zeroshot_value(block, c)) for c in columns])
        if modality in before:
            rows.append(
                [_esc(f"{modality} (before training)")]
                + [_fmt(_zeroshot_value(before[modality], c)) for c in columns]
            )
    parts = [
        "<h2>Zero-shot classification</h2>",
        '<p class="note">each sample is given the class whose prompt embedding is most '
        "similar; chance = 1 / number of classes</p>",
        _html_table(["modality", *columns], rows),
    ]
    for modality, block in zeroshot.items():
        names = block.get("classes") or []
        matrix = np.asarray(block.get("confusion") or [], dtype=float)
        if matrix.ndim == 2 and 0 < len(matrix) <= _MAX_CONFUSION:
            parts += [
                f"<h2>Zero-shot confusion matrix: {_esc(modality)}</h2>",
                '<p class="note">rows: true, columns: predicted</p>',
                _img(_confusion_figure(matrix, names), f"zero-shot confusion {modality}"),
            ]
        elif len(matrix):
            parts.append(
                f'<p class="note">{_esc(modality)}: {len(matrix)} classes, too many to draw '
                "a confusion matrix (it is in metrics.json)</p>"
            )
        per_class = block.get("per_class") or {}
        if per_class:
            keys = ("precision", "recall", "f1", "support")
            body = [[_esc(n)] + [_fmt(v.get(c)) for c in keys] for n, v in per_class.items()]
            parts.append(
                f"<details><summary>Per-class zero-shot scores: {_esc(modality)}</summary>"
                f"{_html_table(['class', *keys], body)}</details>"
            )
    return parts


def _zeroshot_value(block: dict[str, Any], column: str) -> Any:
    if column == "chance":
        classes = block.get("classes") or []
        return 1.0 / len(classes) if classes else None
    return block.get(column)


def render_retrieval_table(metrics: dict[str, Any]) -> Table:
    """The retrieval block as a rich table for the terminal: a row per direction.

    `metrics` is an alignment run's metrics (with `retrieval`, optionally `split`,
    `relevance` and `zeroshot`, whose accuracies go in the caption) or the retrieval block
    itself ({"image->text": retrieval_metrics, ...}; without a `retrieval` key, only keys
    naming a direction with "->" are read).
    """
    from rich.markup import escape
    from rich.table import Table

    if "retrieval" in metrics:
        block, bare = metrics["retrieval"] or {}, False
    else:
        block, bare = metrics, True
    retrieval = {
        str(k): v for k, v in block.items() if isinstance(v, dict) and not (bare and "->" not in k)
    }
    context = []
    if isinstance(metrics.get("split"), str):
        context.append(metrics["split"])
    if isinstance(metrics.get("relevance"), str):
        context.append(f"{metrics['relevance']} relevance")
    title = "Retrieval" + (f" ({', '.join(context)})" if context else "")
    zeroshot = metrics.get("zeroshot") or {}
    accuracies = ", ".join(
        f"{modality} {_fmt(block.get('accuracy'))}" for modality, block in zeroshot.items()
    )
    caption = f"zero-shot accuracy: {accuracies}" if accuracies else None
    table = Table(title=escape(title), caption=escape(caption) if caption else None)
    header, rows = _retrieval_rows(retrieval)
    table.add_column(header[0], style="cyan")
    for column in header[1:]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(escape(str(row[0])), *(_fmt(v) for v in row[1:]))
    return table


def _alignment_columns(metrics: dict[str, Any]) -> dict[str, float | None]:
    """Comparison columns of an alignment run: R@1 per direction, R@k averaged over
    directions (`mean R@k`) and zero-shot accuracy per modality; {} for other runs."""
    retrieval = metrics.get("retrieval")
    out: dict[str, float | None] = {}
    if isinstance(retrieval, dict) and retrieval:
        for direction, block in retrieval.items():
            out[f"{direction} R@1"] = _number(block.get("R@1"))
        for key in _recall_keys(list(retrieval.values())):
            values = [_number(block.get(key)) for block in retrieval.values()]
            known = [v for v in values if v is not None]
            out[f"mean {key}"] = float(np.mean(known)) if known else None
    zeroshot = metrics.get("zeroshot")
    if isinstance(zeroshot, dict):
        for modality, block in zeroshot.items():
            if isinstance(block, dict):
                out[f"zeroshot {modality} accuracy"] = _number(block.get("accuracy"))
    return out


# ----------------------------------------------------------------------------- comparisons


def comparison_table(runs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per run: headline metrics present in any run, then alignment columns
    (`image->text R@1`, `mean R@5`, `zeroshot image accuracy`, ...: `_alignment_columns`),
    then scalar extras such as `params` or `train_seconds` (any other numeric top-level
    key that is not a detail). A run lacking a column has NaN there."""
    headline = [c for c in HEADLINE if any(_number(m.get(c)) is not None for m in runs.values())]
    derived = {name: _alignment_columns(m) for name, m in runs.items()}
    aligned = list(dict.fromkeys(c for columns in derived.values() for c in columns))
    extras: list[str] = []
    for metrics in runs.values():
        for key, value in metrics.items():
            if key in HEADLINE or key in _DETAIL or key in extras or key in aligned:
                continue
            if _number(value) is not None:
                extras.append(key)
    columns = headline + aligned + extras
    data = {
        name: {c: derived[name][c] if c in derived[name] else _number(m.get(c)) for c in columns}
        for name, m in runs.items()
    }
    frame = pd.DataFrame.from_dict(data, orient="index", columns=columns, dtype=float)
    frame.index.name = "run"
    return frame


def write_comparison_report(
    folder: Path, runs: dict[str, dict[str, Any]], title: str, notes: str = ""
) -> Path:
    """Write `comparison.json` and `comparison.html` (best value per column in bold, a
    grouped bar chart of accuracy/F1, mean R@1 and zero-shot accuracy per run). Returns
    the html path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = comparison_table(runs)
    best = _best(table)
    atomic_write_json(
        folder / "comparison.json",
        to_jsonable(
            {
                "title": title,
                "notes": notes,
                "columns": list(table.columns),
                "rows": {run: row.to_dict() for run, row in table.iterrows()},
                "best": {col: sorted(winners) for col, winners in best.items()},
            }
        ),
    )
    rows = []
    for run, row in table.iterrows():
        cells = [_esc(run)]
        for column in table.columns:
            text = _fmt(row[column])
            cells.append(f"<b>{text}</b>" if run in best.get(column, ()) else text)
        rows.append(cells)
    parts = [f"<h1>{_esc(title)}</h1>"]
    if notes:
        parts.append(f'<p class="notes">{_esc(notes)}</p>')
    parts += [
        "<h2>Runs</h2>",
        '<p class="note">best value per column in bold</p>',
        _html_table(["run", *table.columns], rows),
    ]
    chart = _comparison_chart(table)
    if chart:
        parts += ["<h2>Scores per run</h2>", chart]
    path = folder / "comparison.html"
    atomic_write_text(path, _page(title, parts))
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
            text = _fmt(row[column])
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


def _comparison_chart(table: pd.DataFrame) -> str:
    candidates = [*_BAR_METRICS, "mean R@1"] + [
        str(c) for c in table.columns if str(c).startswith("zeroshot ")
    ]
    metrics = [c for c in candidates if c in table and table[c].notna().any()]
    if not metrics and "r2" in table and table["r2"].notna().any():
        metrics = ["r2"]
    if not metrics or table.empty:
        return ""
    runs = [str(r) for r in table.index]
    fig, ax = _figure(max(5.0, 0.9 * len(runs) * max(1, len(metrics)) * 0.45 + 2.5), 4.0)
    width = 0.8 / len(metrics)
    for i, metric in enumerate(metrics):
        positions = np.arange(len(runs)) + (i - (len(metrics) - 1) / 2) * width
        ax.bar(positions, table[metric].fillna(0.0).to_numpy(), width=width, label=metric)
    ax.set_xticks(range(len(runs)), [_mpl(r) for r in runs], rotation=30, ha="right")
    ax.set_ylim(0, max(1.0, float(np.nanmax(table[metrics].to_numpy(dtype=float)))))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _img(fig, "scores per run")


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


# ----------------------------------------------------------------------------- html & plots


def _page(title: str, parts: list[str]) -> str:
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _html_table(header: Sequence[str], rows: list[list[str]]) -> str:
    """Cells are already escaped/formatted; headers are escaped here."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """Numbers to 4 decimals (integers as such), missing as an em dash, text escaped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if value.is_integer():  # counts (epochs, params) arrive as floats from pandas
            return str(int(value))
        if abs(value) >= 100:
            return f"{value:.2f}"
        return f"{value:.3g}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return _esc(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _mpl(text: str) -> str:
    """Stop matplotlib reading `$...$` in a user's name as math."""
    return text.replace("$", r"\$")


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, Any]:
    """A figure on the Agg canvas directly: no pyplot global state, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes: Axes | np.ndarray = fig.subplots(1, ncols)
    return fig, axes


def _img(fig: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'
