"""`plait export MODEL --format onnx --out DIR`: the command, registered by `plait.cli`.

Heavy imports (torch, ONNX) happen inside the command so `plait --help` stays instant.
A `PlaitError` prints one clear line and exits 2, as every `plait` command does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

EXIT_ERROR = 2  # a PlaitError: nothing (or nothing complete) was written
console = Console(stderr=True)


def export_command(
    model: Annotated[Path, typer.Argument(help="Saved model folder (from `plait train`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Export folder to write.")],
    format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Table of real rows for the parity check (default: the model's test or "
            "valid file when it exists).",
        ),
    ] = None,
    exporter: Annotated[
        str,
        typer.Option(
            help="auto (TorchScript, then dynamo where it fails or disagrees), legacy or dynamo."
        ),
    ] = "auto",
    max_abs: Annotated[
        float, typer.Option(help="Refuse when an output differs from PyTorch's by more.")
    ] = 1e-4,
    min_cosine: Annotated[
        float, typer.Option(help="Refuse when an embedding's cosine to PyTorch's is lower.")
    ] = 0.9999,
) -> None:
    """Export a model to ONNX, checked against PyTorch on real rows.

    Writes DIR with the graph(s) (one for a supervised model, one per tower for an aligned
    model, the encoder side and one decoding step for a captioner), export.json
    (versions, exporter per graph, parity results, the source folder's checksums) and
    what preprocessing needs; [bold]plait.load(DIR)[/] predicts
    from raw rows with ONNX Runtime. Prints the parity table; refuses (exit 2, nothing
    written) when ONNX and PyTorch disagree beyond the tolerance.

    Example: [bold]plait export runs/demo/model --format onnx --out runs/demo/onnx[/]
    """
    from plait.errors import PlaitError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        from plait.export.api import export
        from plait.export.parity import Tolerance
        from plait.export.report import parity_table

        result = export(
            model,
            out,
            format,
            data=data,
            exporter=exporter,
            tolerance=Tolerance(max_abs=max_abs, min_cosine=min_cosine),
        )
    except PlaitError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(code=EXIT_ERROR) from None
    from plait.utils.tables import print_table

    print_table(parity_table(result))
    used = ", ".join(f"{g.name}: {g.exporter}" for g in result.graphs)
    if result.captioning:
        checks = ", ".join(
            f"{c['same']}/{c['rows']} rows with {c['decoding']['num_beams']} beam(s)"
            for c in result.captioning["caption_agreement"]
        )
        console.print(f"captions through ONNX Runtime equal PyTorch's: {checks}")
    console.print(f"wrote {result.folder} (exporter {used})")
