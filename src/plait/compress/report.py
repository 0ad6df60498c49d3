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
