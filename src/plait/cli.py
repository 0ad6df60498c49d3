"""The `plait` command line. Each command mirrors a function of the Python API.

Heavy imports (torch, Lightning) happen inside the commands so `plait --help` is instant.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="plait",
    help="Plait: multimodal deep learning (text, image, audio) from a table to a model.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
data_app = typer.Typer(help="Build ready-made data sets (AV-MNIST).", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _fail(exc: Exception) -> None:
    # the message is plain text: a path like `scans[old]/x.png` must not be read as rich markup,
    # and long paths must not be broken across lines
    console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(code=2)


def _run(action):
    """Run a command body; Plait's own errors print as one clear message, no traceback."""
    from plait.errors import PlaitError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return action()
    except PlaitError as exc:
        _fail(exc)
    except KeyboardInterrupt as exc:
        console.print(f"[yellow]interrupted[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(code=130) from None


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for data, runs and the report.")] = Path(
        "plait-demo"
    ),
    rows: Annotated[int, typer.Option(help="Training rows to generate.")] = 900,
    epochs: Annotated[int, typer.Option(help="Epochs per model.")] = 10,
    fusions: Annotated[str, typer.Option(help="Comma-separated fusion methods.")] = "concat,gated",
) -> None:
    """Train on the built-in demo data: three unimodal baselines against fusions.

    Example: [bold]plait demo --out plait-demo[/] then open plait-demo/report/comparison.html
    """

    def action() -> None:
        from plait.demo import run_demo

        result = run_demo(
            out, rows=rows, epochs=epochs, fusions=tuple(f.strip() for f in fusions.split(","))
        )
        console.print(f"report: {result.report_path}  ({result.seconds:.0f} s)")

    _run(action)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML config file.")],
    resume: Annotated[bool, typer.Option(help="Continue from checkpoints/last.ckpt.")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key, e.g. --set training.lr=0.01"),
    ] = None,
) -> None:
    """Train a model from a YAML config; writes checkpoints, the model and a report.

    Examples:
      [bold]plait train my.yaml[/]
      [bold]plait train my.yaml --set fusion.method=gated --set training.epochs=20[/]
      [bold]plait train my.yaml --resume[/]   (after an interruption)
    """

    def action() -> None:
        from plait.api import train as train_api

        result = train_api(config, resume=resume, overrides=set_ or [])
        if result.rank != 0:  # a DDP worker process: rank 0 reports the run
            return
        console.print(f"model:  {result.model_dir}")
        console.print(f"report: {result.report_path}")
        _print_metrics(result.metrics)

    _run(action)


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="Saved model folder (runs/NAME/model).")],
    data: Annotated[Path, typer.Argument(help="Labelled table: CSV, Parquet or JSONL.")],
    out: Annotated[Path | None, typer.Option(help="Write metrics.json + report.html here.")] = None,
) -> None:
    """Score a saved model on labelled data.

    Example: [bold]plait evaluate runs/demo/model test.csv --out eval-report[/]
    """

    def action() -> None:
        from plait.api import evaluate as evaluate_api

        _print_metrics(evaluate_api(model, data, out=out))
        if out:
            console.print(f"report: {out / 'report.html'}")

    _run(action)


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="Saved model folder.")],
    data: Annotated[Path, typer.Argument(help="Table to predict: CSV, Parquet or JSONL.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV or Parquet to write.")] = Path(
        "predictions.csv"
    ),
) -> None:
    """Predict classes and probabilities (or values) for every row.

    Example: [bold]plait predict runs/demo/model new.csv -o predictions.csv[/]
    """

    def action() -> None:
        from plait.api import predict as predict_api

        frame = predict_api(model, data, output=output)
        console.print(f"wrote {len(frame)} predictions to {output}")

    _run(action)


@app.command()
def robustness(
    model: Annotated[Path, typer.Argument(help="Saved model folder.")],
    data: Annotated[Path, typer.Argument(help="Labelled table: CSV, Parquet or JSONL.")],
    noise: Annotated[str, typer.Option(help="Comma-separated noise levels per modality.")] = (
        "0.5,1"
    ),
    out: Annotated[Path | None, typer.Option(help="Write robustness.csv/json + report.")] = None,
) -> None:
    """Accuracy with each modality missing and with noise added to each modality.

    Example: [bold]plait robustness runs/demo/model test.csv --noise 0.5,1 --out robust[/]
    """

    def action() -> None:
        from plait.api import robustness as robustness_api
        from plait.evaluation import render_rich_table

        levels = tuple(float(v) for v in noise.split(",") if v.strip())
        frame = robustness_api(model, data, noise_levels=levels, out=out)
        Console().print(render_rich_table(frame, "Robustness"))
        if out:
            console.print(f"report: {out / 'report.html'}")

    _run(action)


@app.command()
def report(
    runs: Annotated[
        list[Path], typer.Argument(help="Run folders (each with report/metrics.json).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for comparison.html.")] = Path("comparison"),
) -> None:
    """Compare several runs in one table and chart.

    Example: [bold]plait report runs/a runs/b --out comparison[/]
    """

    def action() -> None:
        import json

        from plait.errors import PlaitError
        from plait.evaluation import comparison_table, render_rich_table, write_comparison_report

        table = {}
        for run in runs:
            path = run / "report" / "metrics.json"
            if not path.is_file():
                raise PlaitError(f"{run}: no report/metrics.json (is it a finished run?)")
            table[run.name] = json.loads(path.read_text())
        html = write_comparison_report(out, table, title="Plait comparison")
        Console().print(render_rich_table(comparison_table(table), "comparison"))
        console.print(f"report: {html}")

    _run(action)


@app.command()
def check(config: Annotated[Path, typer.Argument(help="YAML config file.")]) -> None:
    """Validate a config (keys, types, values) and print it fully resolved.

    Example: [bold]plait check my.yaml[/]
    """

    def action() -> None:
        from plait.config import PlaitConfig

        sys.stdout.write(PlaitConfig.from_yaml(config).to_yaml())

    _run(action)


@data_app.command("avmnist")
def data_avmnist(
    mnist: Annotated[Path, typer.Option(help="Folder with the four MNIST *-ubyte.gz files.")],
    fsdd: Annotated[Path, typer.Option(help="Folder with FSDD recordings.tar.xz + manifest.csv.")],
    out: Annotated[Path, typer.Option(help="Output folder (arrays, manifests, README).")],
    subset: Annotated[
        int | None,
        typer.Option(min=10, max=55000, help="Keep N train, N//10 valid, N//5 test rows."),
    ] = None,
    noise: Annotated[
        float, typer.Option(min=0.0, help="Gaussian noise std as a multiple of each clip's RMS.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Rotates the pairing; seeds the noise.")] = 0,
) -> None:
    """Build AV-MNIST (MNIST digits paired with spoken digits) as arrays + manifests.

    Example: [bold]plait data avmnist --mnist ../shared/data/mnist --fsdd ../shared/data/fsdd
    --out avmnist[/] then [bold]plait train configs/avmnist-concat.yaml[/]
    """

    def action() -> None:
        from plait.data.avmnist import build_avmnist

        info = build_avmnist(mnist, fsdd, out, subset=subset, noise=noise, seed=seed)
        counts = ", ".join(f"{k} {v}" for k, v in info["counts"].items())
        console.print(f"AV-MNIST in {out}: {counts} ({info['seconds']:.1f} s)")

    _run(action)


def _print_metrics(metrics: dict) -> None:
    from rich.table import Table

    table = Table(title="metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


if __name__ == "__main__":  # pragma: no cover
    app()
