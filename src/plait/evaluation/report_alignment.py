"""The alignment part of a run report: retrieval table and R@k chart, zero-shot
accuracy and confusion matrices, the retrieval table for the terminal, and the columns an
alignment run adds to a comparison."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from plait.evaluation.html import (
    Block,
    Details,
    HtmlTable,
    Image,
    Note,
    Section,
    confusion_figure,
    figure,
    fmt,
    img,
    mpl_text,
    number,
)

if TYPE_CHECKING:
    from rich.table import Table

#: Zero-shot confusion matrices are drawn up to this many classes (beyond, unreadable).
_MAX_CONFUSION = 100
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


def alignment_sections(metrics: dict[str, Any]) -> list[Section]:
    """Retrieval table and R@k chart, then zero-shot accuracy and confusion matrices.

    Reads `retrieval` ({direction: retrieval_metrics}), `relevance` ("pair" | "label"),
    `zeroshot` and `zeroshot_before` ({modality: zeroshot_metrics}); each is optional.
    """
    parts: list[Section] = []
    retrieval = metrics.get("retrieval") or {}
    if retrieval:
        header, rows = _retrieval_rows(retrieval)
        note = _RELEVANCE_NOTES.get(str(metrics.get("relevance")), "")
        note += ("; " if note else "") + (
            "rank of the first relevant item, ties counted against the query"
        )
        blocks: list[Block] = [
            Note(note),
            HtmlTable(header, [[str(r[0])] + [fmt(v) for v in r[1:]] for r in rows]),
        ]
        chart = _recall_chart(retrieval)
        if chart:
            blocks.append(chart)
        parts.append(Section("Retrieval", blocks))
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


def _recall_chart(retrieval: dict[str, dict[str, Any]]) -> Image | None:
    """Grouped bars: R@k on the x axis, one bar per direction."""
    recalls = _recall_keys(list(retrieval.values()))
    if not recalls:
        return None
    directions = list(retrieval)
    fig, ax = figure(max(5.0, 1.2 * len(recalls) * len(directions) + 2.0), 3.8)
    width = 0.8 / len(directions)
    for i, direction in enumerate(directions):
        values = [number(retrieval[direction].get(k)) or 0.0 for k in recalls]
        positions = np.arange(len(recalls)) + (i - (len(directions) - 1) / 2) * width
        bars = ax.bar(positions, values, width=width, label=mpl_text(direction))
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(range(len(recalls)), recalls)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("recall")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return img(fig, "recall at k per direction")


def _zeroshot_sections(
    zeroshot: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]]
) -> list[Section]:
    """One table (a row per modality, plus its before-training row when known), then per
    modality a confusion matrix and a folded per-class table."""
    columns = ["accuracy", "top5_accuracy", "macro_f1", "chance", "samples"]
    rows = []
    for modality, block in zeroshot.items():
        rows.append([modality] + [fmt(_zeroshot_value(block, c)) for c in columns])
        if modality in before:
            rows.append(
                [f"{modality} (before training)"]
                + [fmt(_zeroshot_value(before[modality], c)) for c in columns]
            )
    note = Note(
        "each sample is given the class whose prompt embedding is most "
        "similar; chance = 1 / number of classes"
    )
    parts = [Section("Zero-shot classification", [note, HtmlTable(["modality", *columns], rows)])]
    for modality, block in zeroshot.items():
        names = block.get("classes") or []
        matrix = np.asarray(block.get("confusion") or [], dtype=float)
        if matrix.ndim == 2 and 0 < len(matrix) <= _MAX_CONFUSION:
            figure_block = img(confusion_figure(matrix, names), f"zero-shot confusion {modality}")
            parts.append(
                Section(
                    f"Zero-shot confusion matrix: {modality}",
                    [Note("rows: true, columns: predicted"), figure_block],
                )
            )
        elif len(matrix):
            too_many = Note(
                f"{modality}: {len(matrix)} classes, too many to draw "
                "a confusion matrix (it is in metrics.json)"
            )
            parts.append(Section(None, [too_many]))
        per_class = block.get("per_class") or {}
        if per_class:
            keys = ("precision", "recall", "f1", "support")
            body = [[n] + [fmt(v.get(c)) for c in keys] for n, v in per_class.items()]
            summary = f"Per-class zero-shot scores: {modality}"
            parts.append(Section(None, [Details(summary, HtmlTable(["class", *keys], body))]))
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
        f"{modality} {fmt(block.get('accuracy'))}" for modality, block in zeroshot.items()
    )
    caption = f"zero-shot accuracy: {accuracies}" if accuracies else None
    table = Table(title=escape(title), caption=escape(caption) if caption else None)
    header, rows = _retrieval_rows(retrieval)
    table.add_column(header[0], style="cyan")
    for column in header[1:]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(escape(str(row[0])), *(fmt(v) for v in row[1:]))
    return table


def alignment_columns(metrics: dict[str, Any]) -> dict[str, float | None]:
    """Comparison columns of an alignment run: R@1 per direction, R@k averaged over
    directions (`mean R@k`) and zero-shot accuracy per modality; {} for other runs."""
    retrieval = metrics.get("retrieval")
    out: dict[str, float | None] = {}
    if isinstance(retrieval, dict) and retrieval:
        for direction, block in retrieval.items():
            out[f"{direction} R@1"] = number(block.get("R@1"))
        for key in _recall_keys(list(retrieval.values())):
            values = [number(block.get(key)) for block in retrieval.values()]
            known = [v for v in values if v is not None]
            out[f"mean {key}"] = float(np.mean(known)) if known else None
    zeroshot = metrics.get("zeroshot")
    if isinstance(zeroshot, dict):
        for modality, block in zeroshot.items():
            if isinstance(block, dict):
                out[f"zeroshot {modality} accuracy"] = number(block.get("accuracy"))
    return out
