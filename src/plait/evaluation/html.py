"""Generic pieces of a self-contained HTML report: the blocks a page is made of, the
Jinja2 templates that render them, cell formatting and matplotlib figures inlined as
base64 PNG.

Shared by `report`, `report_alignment`, `comparison`, `robustness` and the retrieval
contact sheet, so every page looks the same and escapes user-supplied strings (class
names, run names, titles, captions) the same way: the templates autoescape every value,
so a class called `<b>&x` shows as text, not markup. Only `Markup` passes through as is:
`fmt` output (escaped here) and a caller's own `Raw` HTML.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


# ------------------------------------------------------------------------------- blocks


@dataclass
class Note:
    """A line of explanatory text (`css` "note", "meta" or "notes")."""

    text: str
    css: str = "note"
    kind: ClassVar[str] = "note"


@dataclass
class HtmlTable:
    """A table; each cell is a value (escaped by the template) or `Markup` (from `fmt`).
    `bold` holds the (row, column) positions drawn in bold."""

    header: Sequence[str]
    rows: list[list[Any]]
    bold: set[tuple[int, int]] = field(default_factory=set)
    kind: ClassVar[str] = "table"


@dataclass
class Image:
    """An inline PNG (a `data:` URI), so the page stays one file."""

    src: str
    alt: str
    kind: ClassVar[str] = "image"


@dataclass
class Pre:
    """Preformatted text (a resolved config)."""

    text: str
    kind: ClassVar[str] = "pre"


@dataclass
class Details:
    """A folded block: `summary` shown, `inner` block on a click."""

    summary: str
    inner: Block
    kind: ClassVar[str] = "details"


@dataclass
class Warn:
    """A highlighted box: a list of `items`, or one paragraph of `text`."""

    title: str
    items: list[str] = field(default_factory=list)
    text: str = ""
    kind: ClassVar[str] = "warn"


@dataclass
class Raw:
    """HTML a caller built and escaped itself (`write_report`'s `extra_sections`)."""

    html: Markup
    kind: ClassVar[str] = "raw"


@dataclass
class CaptionCard:
    """One test example of a captioner: its picture (`image`: a data URI) or sound
    (`audio`: a data URI), or why neither can be shown (`problem`), and its captions."""

    id: str
    generated: str
    references: list[str]
    image: str | None = None
    audio: str | None = None
    problem: str = ""


@dataclass
class CaptionSheet:
    """A grid of `CaptionCard`s: what a captioner wrote beside what people wrote."""

    cards: list[CaptionCard]
    kind: ClassVar[str] = "captions"


Block = Note | HtmlTable | Image | Pre | Details | Warn | Raw | CaptionSheet


@dataclass
class Section:
    """A `<h2>` heading (none for a box above the summary) and the blocks under it."""

    heading: str | None
    blocks: list[Block]


# ---------------------------------------------------------------------------- templates


@cache
def environment() -> Environment:
    """The templates in `plait/evaluation/templates/`, every value autoescaped."""
    return Environment(
        loader=PackageLoader("plait.evaluation", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> str:
    """Render one template of `plait/evaluation/templates/` with `context`."""
    return environment().get_template(template).render(**context)


def render_page(title: str, sections: Sequence[Section], meta: str | None = None) -> str:
    """A whole HTML document with the CSS inline, so the file needs nothing beside it."""
    return render("report.html", title=title, meta=meta, sections=sections)


def render_blocks(blocks: Sequence[Block]) -> Markup:
    """Blocks as an HTML fragment (for `write_report(..., extra_sections=...)`)."""
    return Markup(render("fragment.html", blocks=blocks))


def esc(value: Any) -> Markup:
    """HTML-escape any value as text, so user-supplied names never become markup."""
    return escape(str(value))


def fmt(value: Any) -> Markup:
    """Numbers to 4 decimals (integers as such), missing as an em dash, text escaped."""
    return escape(_formatted(value))


def _formatted(value: Any) -> str:
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
    return str(value)


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


def img(fig: Figure, alt: str) -> Image:
    """The figure as an inline base64 PNG, so the page stays one file."""
    return Image(png_data_uri(fig), alt)


def png_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


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
