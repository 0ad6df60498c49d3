"""`plait ask MODEL FILE "question"` and `plait data vqa OUT [--kind tones]`: the question-answering
commands, registered by `plait.cli`.

Heavy imports (torch, the model) happen inside the commands so `plait --help` stays
instant. A `PlaitError` prints one clear line and exits 2, as every `plait` command does;
rows that could not be read exit 3 (their answers are empty, listed beside the output).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from plait.utils.commands import EXIT_SKIPPED, console, fail, run_command


def ask_command(
    model: Annotated[
        Path, typer.Argument(help="Saved question-answering model (runs/NAME/model).")
    ],
    file: Annotated[
        Path | None, typer.Argument(help="The image (or sound) the question is about.")
    ] = None,
    question: Annotated[str | None, typer.Argument(help="The question, in quotes.")] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A table (CSV, Parquet, JSONL) of files and questions "
            "(the model's columns) instead of FILE and QUESTION.",
        ),
    ] = None,  # fmt: skip
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Answers shown per question.")] = 1,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the answers (CSV or Parquet).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per batch.")] = 64,
) -> None:
    """Answer a question about a picture (or a sound) with a model trained with `vqa:`.

    Prints the answer and its probability (and the next likeliest with --top-k). With
    --data, answers every row of a table. A file that cannot be read keeps its row with an
    empty answer and an `error`; exit status 3 then.

    Example: [bold]plait ask runs/vqa-reasoning/model scene.png "what is the shape of the
    red object?" --top-k 3[/]
    """
    from plait.errors import PlaitError

    if data is None and (file is None or question is None):
        fail("give FILE and QUESTION, or --data TABLE")
    if data is not None and (file is not None or question is not None):
        fail("give FILE and QUESTION, or --data TABLE, not both")

    def action() -> tuple[Any, Any]:
        from plait.api import ask
        from plait.tasks import load

        predictor = load(model)
        if data is None:
            assert file is not None and question is not None
            if not file.is_file():
                raise PlaitError(f"{file}: no such file")
            frame = ask(predictor, [file], [question], output=out, top_k=top_k,
                        batch_size=batch_size)  # fmt: skip
        else:
            frame = ask(predictor, data=data, output=out, top_k=top_k, batch_size=batch_size)
        return predictor, frame

    predictor, frame = run_command(action)
    _print_answers(frame)
    if out is not None:
        console.print(f"wrote {len(frame)} answers to {escape(str(out))}", soft_wrap=True)
    report = getattr(predictor, "last_bad_rows", None)
    if report:
        from plait.data.bad_rows import bad_rows_path

        text = report.summary(bad_rows_path(out) if out is not None else None)
        console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)
        raise typer.Exit(code=EXIT_SKIPPED)


def _print_answers(frame: Any) -> None:
    """The answers as a table on stdout (probabilities to 4 decimals)."""
    from rich.table import Table

    from plait.utils.tables import print_table

    table = Table()
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else escape(str(v)) for v in row))
    print_table(table)


class VqaData(str, Enum):
    """What `plait data vqa` generates."""

    reasoning = "reasoning"
    tones = "tones"


def data_vqa_command(
    out: Annotated[
        Path, typer.Argument(help="Output folder (manifests, pictures or sounds, README).")
    ],
    kind: Annotated[
        VqaData,
        typer.Option(help="`reasoning`: pictures of coloured shapes; `tones`: tone sequences."),
    ] = VqaData.reasoning,
    train: Annotated[int, typer.Option(min=0, help="Training scenes (pictures or sounds).")] = 2000,
    valid: Annotated[int, typer.Option(min=0, help="Validation scenes.")] = 200,
    test: Annotated[int, typer.Option(min=0, help="Test scenes.")] = 200,
    questions: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Questions per scene (default: reasoning 36, every type about every colour "
            "once; tones 6).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same files.")] = 0,
) -> None:
    """Generate question-answering data: pictures of six coloured shapes with questions
    about one object (shape, left/right, top/bottom) and about its relations (closest,
    furthest, how many of the same shape), and their answers; or, with --kind tones,
    sounds of 2-4 tones with questions about one tone (pitch, short/long, how many) and
    about their relations (higher/lower, which is longer, how many of the same pitch).

    Example: [bold]plait data vqa reasoning[/] writes reasoning/train.csv, valid.csv,
    test.csv and reasoning/images/; [bold]plait data vqa tone-questions --kind tones[/]
    writes tone-questions/train.csv, ... and tone-questions/audio/.
    """
    from plait.errors import PlaitError

    if kind is VqaData.reasoning:
        from plait.datasets.reasoning import generate_reasoning as build
    else:
        from plait.datasets.tone_questions import generate_tone_questions as build

    def action() -> dict[str, Path]:
        asked = {} if questions is None else {"questions": questions}  # else the builder's
        try:
            return build(out, train, valid, test, seed=seed, progress=True, **asked)
        except (ValueError, OSError) as exc:
            raise PlaitError(str(exc)) from None

    paths = run_command(action)
    for split, path in paths.items():
        console.print(f"{split}: {path}")
