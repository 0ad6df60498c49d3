"""Generic pieces of a self-contained HTML report: the page shell, tables, cell
formatting and matplotlib figures inlined as base64 PNG.

Shared by `report`, `report_alignment`, `comparison` and `robustness`, so every report
looks the same and escapes user-supplied strings (class names, run names, titles) the
same way: a class called `<b>&x` must show as text, not markup.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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


def page(title: str, parts: list[str]) -> str:
    """A whole HTML document with the CSS inline, so the file needs nothing beside it."""
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def html_table(header: Sequence[str], rows: list[list[str]]) -> str:
    """Cells are already escaped/formatted; headers are escaped here."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def esc(value: Any) -> str:
    """HTML-escape any value as text, so user-supplied names never become markup."""
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
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
    return esc(value)


def number(value: Any) -> float | None:
    """A finite float, or None for anything else (bools, text, NaN, inf): safe to compare."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def mpl_text(text: str) -> str:
    """Stop matplotlib reading `$...$` in a user's name as math."""
    return text.replace("$", r"\$")


def figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, Any]:
    """A figure on the Agg canvas directly: no pyplot global state, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes: Axes | np.ndarray = fig.subplots(1, ncols)
    return fig, axes


def img(fig: Figure, alt: str) -> str:
    """The figure as an inline base64 PNG `<img>`, so the page stays one file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def confusion_figure(matrix: np.ndarray, names: Sequence[str]) -> Figure:
    """Heat map of a confusion matrix; shared by the classification and zero-shot sections."""
    k = len(matrix)
    size = min(max(4.0, 0.55 * k + 2.0), 20.0)
    fig, ax = figure(size, size)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    labels = [mpl_text(str(n)) for n in names] if len(names) == k else [str(i) for i in range(k)]
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
