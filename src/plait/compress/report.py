"""The tables `plait prune` and `plait quantize` print (Rich, on stdout)."""

from __future__ import annotations

from typing import Any

from plait.compress.measure import Measurement


def prune_table(rows: list[Measurement], title: str) -> Any:
    """Params, size on disk (and zipped), latency at batch 1 and the main metric per stage."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("stage", "params", "non-zero", "size MB", "zipped MB", "latency ms (b=1)"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    table.add_column(rows[0].metric if rows else "metric", justify="right")
    for row in rows:
        table.add_row(
            row.stage,
            f"{row.params:,}",
            f"{row.nonzero_params:,}",
            _number(row.size_mb),
            _number(row.zipped_mb),
            f"{row.latency_ms:.3f}",
            _number(row.value),
        )
    return table


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def quantize_table(rows: list[Any], title: str) -> Any:
    """Per graph and runtime: size and latency at batch 1 and 32."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("graph", "runtime", "size MB", "latency ms b=1", "latency ms b=32"):
        table.add_column(column, justify="left" if column in ("graph", "runtime") else "right")
    for row in rows:
        table.add_row(
            row.graph,
            row.runtime,
            _number(row.size_mb),
            f"{row.latency_b1_ms:.3f}",
            f"{row.latency_b32_ms:.3f}",
        )
    return table


def quality_table(quality: dict[str, Any]) -> Any:
    """What INT8 changed: metrics FP32 -> INT8, embedding cosine to FP32 per tower."""
    from rich.table import Table

    table = Table(title="what INT8 costs (test rows)")
    for column in ("measure", "FP32", "INT8", "change"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name, value in quality.items():
        if isinstance(value, dict) and "change" in value:
            table.add_row(
                name, _number(value["fp32"]), _number(value["int8"]), f"{value['change']:+.4f}"
            )
        elif name == "cosine":
            for tower, c in value.items():
                table.add_row(
                    f"cosine to FP32, {tower} (min / mean)",
                    "1",
                    f"{c['min']:.4f} / {c['mean']:.4f}",
                    "",
                )
        elif isinstance(value, int | float):
            table.add_row(name, "", _number(float(value)), "")
    return table
