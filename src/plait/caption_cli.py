"""`plait caption MODEL FILES... [--data TABLE] [--out captions.csv]`: the command,
registered by `plait.cli`.

Heavy imports (torch, the model) happen inside the command so `plait --help` stays
instant. A `PlaitError` prints one clear line and exits 2, as every `plait` command does;
rows that could not be read exit 3 (their captions are empty, listed beside the output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from plait.utils.commands import EXIT_SKIPPED, console, run_command


def caption_command(
    model: Annotated[Path, typer.Argument(help="Saved captioning model folder (runs/NAME/model).")],
    files: Annotated[
        list[Path] | None, typer.Argument(help="Image or audio files to caption.")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="A table (CSV, Parquet, JSONL) with the source column instead."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="CSV or Parquet to write (id, caption).")
    ] = Path("captions.csv"),
    max_length: Annotated[int | None, typer.Option(help="Tokens at most per caption.")] = None,
    num_beams: Annotated[int | None, typer.Option(help="Beam search width (1: greedy).")] = None,
    length_penalty: Annotated[
        float | None, typer.Option(help="Beams: >0 favours longer captions, <0 shorter.")
    ] = None,
    sample: Annotated[bool, typer.Option(help="Sample tokens instead of the most likely.")] = False,
    top_k: Annotated[int | None, typer.Option(help="Sampling: among the k likeliest.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Sampling: nucleus mass.")] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling: <1 safer, >1 wilder.")
    ] = None,
    no_repeat_ngram_size: Annotated[
        int | None, typer.Option(help="No n-gram of this size twice in a caption.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Makes sampling repeatable.")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per batch.")] = 32,
) -> None:
    """Write a caption for each image or sound with a captioning model.

    One output row per input, in order (`id`: the file as given, or the table's id).
    Decoding options mean what they mean in Hugging Face `generate()`; left out, the
    model's defaults apply (greedy unless its config says otherwise). A file that cannot
    be read keeps its row with an empty caption and an `error`; exit status 3 then.

    Example: [bold]plait caption runs/captions/model a.png b.png --num-beams 3 -o caps.csv[/]
    """

    def action() -> tuple[Any, Any]:
        from plait.api import caption
        from plait.tasks import load

        predictor = load(model)
        frame = caption(
            predictor, files or None, data=data, output=out, batch_size=batch_size,
            max_length=max_length, num_beams=num_beams, length_penalty=length_penalty,
            do_sample=sample or None, top_k=top_k, top_p=top_p, temperature=temperature,
            no_repeat_ngram_size=no_repeat_ngram_size, seed=seed,
        )  # fmt: skip
        return predictor, frame

    predictor, frame = run_command(action)
    console.print(f"wrote {len(frame)} captions to {escape(str(out))}", soft_wrap=True)
    report = getattr(predictor, "last_bad_rows", None)
    if report:
        from plait.data.bad_rows import bad_rows_path

        text = report.summary(bad_rows_path(out))
        console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)
        raise typer.Exit(code=EXIT_SKIPPED)
