"""`plait export MODEL --format onnx --out DIR`: the command, registered by `plait.cli`.

Heavy imports (torch, ONNX) happen inside the command so `plait --help` stays instant.
A `PlaitError` prints one clear line and exits 2, as every `plait` command does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from plait.utils.commands import console, run_command


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
    from plait.export.parity import Tolerance
    from plait.export.report import parity_table

    def action() -> Any:
        from plait.export.api import export

        return export(
            model,
            out,
            format,
            data=data,
            exporter=exporter,
            tolerance=Tolerance(max_abs=max_abs, min_cosine=min_cosine),
        )

    result = run_command(action)
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
