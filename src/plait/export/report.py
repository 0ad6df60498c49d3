"""The parity table an export prints (one row per graph and case)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from plait.export.api import ExportResult


def parity_table(result: ExportResult) -> Table:
    table = Table(title="ONNX parity with PyTorch")
    for column in (
        "graph",
        "exporter",
        "case",
        "rows",
        "max abs diff",
        "argmax agree",
        "min cosine",
    ):
        table.add_column(
            column, justify="right" if column not in ("graph", "exporter", "case") else "left"
        )
    table.add_column("ok")
    for graph in result.graphs:
        for case in graph.parity:
            table.add_row(
                graph.name,
                graph.exporter,
                case.case,
                str(case.batch),
                f"{case.max_abs:.2e}",
                f"{case.argmax_agree:.0%}",
                f"{case.min_cosine:.6f}",
                "yes" if case.ok else "NO",
            )
    return table
