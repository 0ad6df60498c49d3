"""`plait prune` and `plait quantize`: Typer commands, registered in `plait.cli`.

Heavy imports (torch, torch-pruning, ONNX Runtime) happen inside the command bodies so
`plait --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from plait.utils.commands import console
from plait.utils.commands import run_command as _run


def prune_command(
    model: Annotated[Path, typer.Argument(help="Saved model folder to prune.")],
    amount: Annotated[
        float,
        typer.Option(
            help="Share to remove, between 0 and 1: of each layer's weights, or of "
            "its channels with --structured."
        ),
    ],
    out: Annotated[Path, typer.Option(help="New folder for the pruned model.")],
    structured: Annotated[
        bool,
        typer.Option(
            help="Remove whole channels (torch-pruning) so layers really shrink; "
            "default: zero single weights (same file size, compresses better)."
        ),
    ] = False,
    finetune_epochs: Annotated[
        int, typer.Option(help="Epochs to fine-tune after pruning, on the training table.")
    ] = 0,
    data: Annotated[
        Path | None,
        typer.Option(help="Training table for the fine-tune [default: the model's own]."),
    ] = None,
    test: Annotated[
        Path | None,
        typer.Option(help="Labelled table to measure on [default: the model's test split]."),
    ] = None,
    threads: Annotated[int, typer.Option(help="CPU threads for latency and training.")] = 1,
) -> None:
    """Prune a trained model, fine-tune it briefly, and report what it cost.

    Prints parameters, size on disk, latency (batch 1) and the main metric before
    pruning, after it and after the fine-tune; the same table is saved as
    [bold]OUT/prune_report.json[/]. OUT is a normal model folder for [bold]plait.load[/].

    Example: [bold]plait prune runs/demo/model --amount 0.5 --structured
    --finetune-epochs 2 --out runs/demo/model-pruned[/]
    """

    def action() -> None:
        import torch

        from plait.compress.prune import prune
        from plait.compress.report import prune_table
        from plait.utils.tables import print_table

        torch.set_num_threads(threads)
        result = prune(
            model,
            amount,
            out=out,
            structured=structured,
            finetune_epochs=finetune_epochs,
            data=data,
            test=test,
        )
        kind = "structured" if structured else "unstructured"
        title = f"{kind} pruning of {amount:.0%}, measured on {result.settings['measured_on']}"
        print_table(prune_table(result.rows, title))
        console.print(f"wrote the pruned model to {result.folder} ({result.report_path.name})")

    _run(action)


def quantize_command(
    model: Annotated[
        Path, typer.Argument(help="ONNX export folder (plait export), or a model folder.")
    ],
    out: Annotated[Path, typer.Option(help="New folder for the INT8 export.")],
    method: Annotated[
        str,
        typer.Option(
            help="`dynamic` (INT8 weights, no calibration) or `static` (weights and "
            "activations, calibrated on training rows)."
        ),
    ] = "dynamic",
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="Table of rows to calibrate static INT8 on [default: the model's training table]."
        ),
    ] = None,
    calibration_rows: Annotated[
        int, typer.Option(help="Rows sampled from it for calibration.")
    ] = 128,
    per_channel: Annotated[
        bool, typer.Option(help="One weight scale per output channel (more accurate).")
    ] = True,
    test: Annotated[
        Path | None,
        typer.Option(help="Labelled table to measure the cost on [default: the test split]."),
    ] = None,
    threads: Annotated[int, typer.Option(help="CPU threads for the latency measurement.")] = 1,
    keep_fp32: Annotated[
        list[str] | None,
        typer.Option(
            help="Leave FP32 the graph nodes whose name contains this (repeatable), "
            "e.g. `/net/` for the projection heads."
        ),
    ] = None,
) -> None:
    """Quantize a model to INT8 with ONNX Runtime, and report what it costs.

    A model folder is exported to ONNX first. Prints each graph's size and latency at
    batch 1 and 32 (PyTorch, ONNX FP32, ONNX INT8), the accuracy / F1 change on the test
    split (classifiers) or the embedding cosine drift and recall change (aligned
    towers), and where INT8 is slower. OUT is an export folder for [bold]plait.load[/];
    the report is [bold]OUT/quantize_report.json[/].

    Example: [bold]plait quantize runs/demo/model --method static --out runs/demo/int8[/]
    """

    def action() -> None:
        from plait.compress.quantize import quantize
        from plait.compress.report import quality_table, quantize_table
        from plait.utils.tables import print_table

        result = quantize(
            model,
            method,
            out=out,
            calibration=calibration,
            calibration_rows=calibration_rows,
            per_channel=per_channel,
            test=test,
            threads=threads,
            keep_fp32=keep_fp32 or [],
        )
        title = f"{method} INT8 ({threads} thread(s)), measured on {result.settings['measured_on']}"
        print_table(quantize_table(result.latency, title))
        print_table(quality_table(result.quality))
        for note in result.notes:
            console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
        console.print(f"wrote the INT8 export to {result.folder} ({result.report_path.name})")

    _run(action)
