"""`plait describe` and `plait label`: a large vision-language model describes pictures or
labels a table (registered by `plait.cli`; the Python twins are in `plait.vlm_api`).

Heavy imports happen inside the commands so `plait --help` stays instant. A `PlaitError`
prints one clear line and exits 2; rows that could not be sent to the model keep their
row with an empty answer and an `error`, and the command exits 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from plait.utils.commands import EXIT_SKIPPED, console, run_command

_BACKEND = "Large model"
Model = Annotated[
    str,
    typer.Option(
        help="Hub name or local folder (local), or the server's model name (--provider openai).",
        rich_help_panel=_BACKEND,
    ),
]
Provider = Annotated[
    str,
    typer.Option(
        help="`hub`: run the model here; `openai`: any OpenAI-compatible server.",
        rich_help_panel=_BACKEND,
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(
        help="Server API root for --provider openai (e.g. http://localhost:8000/v1). "
        "No default: your files are sent there.",
        rich_help_panel=_BACKEND,
    ),
]
ApiKeyEnv = Annotated[
    str | None,
    typer.Option(
        help="Environment variable holding the API key (default OPENAI_API_KEY).",
        rich_help_panel=_BACKEND,
    ),
]
Device = Annotated[
    str, typer.Option(help="Local model: cpu, cuda or auto.", rich_help_panel=_BACKEND)
]
Dtype = Annotated[
    str,
    typer.Option(help="Local model: auto, float32, bfloat16 or float16.", rich_help_panel=_BACKEND),
]
BatchSize = Annotated[
    int, typer.Option(help="Local model: requests per batch.", rich_help_panel=_BACKEND)
]
Concurrency = Annotated[
    int, typer.Option(help="Server: requests in flight at once.", rich_help_panel=_BACKEND)
]
Rpm = Annotated[
    float | None,
    typer.Option(
        "--requests-per-minute",
        help="Server: rate limit (none by default).",
        rich_help_panel=_BACKEND,
    ),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        help="Answer cache folder (default ~/.cache/plait/vlm or $PLAIT_VLM_CACHE).",
        rich_help_panel=_BACKEND,
    ),
]
Cache = Annotated[
    bool,
    typer.Option("--cache/--no-cache", help="Reuse cached answers.", rich_help_panel=_BACKEND),
]
Template = Annotated[
    str | None,
    typer.Option(help="Named prompt: brief, detailed, caption, label.", rich_help_panel="Prompt"),
]
Prompt = Annotated[
    str | None,
    typer.Option(
        help="Your own prompt text, or @FILE; {kind} and {classes} are filled in.",
        rich_help_panel="Prompt",
    ),
]


def _options(**given: Any) -> dict[str, Any]:
    """The backend options as `plait.config.VlmConfig` keys."""
    cache_dir = given.pop("cache_dir")
    return {**given, "cache_dir": str(cache_dir) if cache_dir else None}


def describe_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Pictures (or sounds) to describe, or one table (CSV, Parquet, JSONL)."
        ),
    ],
    model: Model,
    column: Annotated[
        str | None, typer.Option(help="Table: the column of file paths (default `image`).")
    ] = None,
    id_column: Annotated[str | None, typer.Option("--id", help="Table: the id column.")] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="CSV, Parquet or JSONL to write.")
    ] = Path("descriptions.csv"),
    template: Template = None,
    prompt: Prompt = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens at most per description.")] = 128,
    provider: Provider = "hub",
    base_url: BaseUrl = None,
    api_key_env: ApiKeyEnv = None,
    device: Device = "cpu",
    dtype: Dtype = "auto",
    batch_size: BatchSize = 8,
    concurrency: Concurrency = 4,
    requests_per_minute: Rpm = None,
    cache_dir: CacheDir = None,
    cache: Cache = True,
) -> None:
    """Describe each picture (or sound) with a large vision-language model.

    One output row per file (or table row), in order: `id`, `description`, and `error`
    for a file that could not be sent. Answers are cached by file content, prompt and
    model, so a rerun only asks for what is new.

    Example: [bold]plait describe a.png b.png --model llava-hf/llava-interleave-qwen-0.5b-hf[/]
    """

    def action() -> Any:
        from plait.vlm_api import describe

        options = _options(provider=provider, base_url=base_url, api_key_env=api_key_env,
                           device=device, dtype=dtype, batch_size=batch_size,
                           concurrency=concurrency,
                           requests_per_minute=requests_per_minute, cache_dir=cache_dir,
                           cache=cache)  # fmt: skip
        return describe(files, model=model, column=column, template=template, prompt=prompt,
                        max_new_tokens=max_new_tokens, id_column=id_column, out=out,
                        **options)  # fmt: skip

    frame = run_command(action)
    console.print(f"wrote {len(frame)} description(s) to {escape(str(out))}", soft_wrap=True)
    _exit_on_errors(frame)


def label_command(
    data: Annotated[Path, typer.Argument(help="Table (CSV, Parquet, JSONL) to label.")],
    model: Model,
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated class names: cat,dog,bird.")
    ] = None,
    classes_file: Annotated[
        Path | None, typer.Option(help="A text file with one class name per line.")
    ] = None,
    column: Annotated[str, typer.Option(help="The column of picture/sound paths.")] = "image",
    label_column: Annotated[
        str, typer.Option(help="True labels, when present: accuracy and confusion.")
    ] = "label",
    id_column: Annotated[str | None, typer.Option("--id", help="The id column.")] = None,
    compare: Annotated[
        Path | None,
        typer.Option(help="A saved aligned (CLIP-style) model: its zero-shot, side by side."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="CSV, Parquet or JSONL to write.")
    ] = Path("labels.csv"),
    template: Template = None,
    prompt: Prompt = None,
    provider: Provider = "hub",
    base_url: BaseUrl = None,
    api_key_env: ApiKeyEnv = None,
    device: Device = "cpu",
    dtype: Dtype = "auto",
    batch_size: BatchSize = 8,
    concurrency: Concurrency = 4,
    requests_per_minute: Rpm = None,
    cache_dir: CacheDir = None,
    cache: Cache = True,
) -> None:
    """Label each row zero-shot with a large model; the answer is always one of the classes.

    A local model scores each class's likelihood; a server is asked for one class and its
    reply is mapped onto the list (a reply naming none is `<no choice>`, counted wrong).
    With a label column: accuracy and a confusion table, beside the aligned model's own
    zero-shot when --compare names one.

    Example: [bold]plait label test.csv --classes cat,dog --model MODEL --compare runs/clip/model[/]
    """

    def action() -> Any:
        from plait.vlm_api import label

        options = _options(provider=provider, base_url=base_url, api_key_env=api_key_env,
                           device=device, dtype=dtype, batch_size=batch_size,
                           concurrency=concurrency,
                           requests_per_minute=requests_per_minute, cache_dir=cache_dir,
                           cache=cache)  # fmt: skip
        names = _class_names(classes, classes_file)
        return label(data, names, model=model, column=column, label_column=label_column,
                     template=template, prompt=prompt, id_column=id_column, compare=compare,
                     out=out, **options)  # fmt: skip

    result = run_command(action)
    console.print(f"wrote {len(result.predictions)} label(s) to {escape(str(out))}", soft_wrap=True)
    if result.metrics is not None:
        _print_comparison(result.metrics, result.compare_metrics, compare)
        _print_confusion(result.confusion())
    _exit_on_errors(result.predictions)


def _class_names(classes: str | None, classes_file: Path | None) -> list[str]:
    from plait.errors import PlaitError

    if (classes is None) == (classes_file is None):
        raise PlaitError("give the classes with exactly one of --classes a,b,c or --classes-file")
    if classes is not None:
        return [c.strip() for c in classes.split(",") if c.strip()]
    assert classes_file is not None
    try:
        lines = classes_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PlaitError(f"--classes-file {classes_file}: cannot be read ({error})") from error
    return [line.strip() for line in lines if line.strip()]


def _exit_on_errors(frame: Any) -> None:
    if "error" in frame.columns:
        failed = int((frame["error"] != "").sum())
        console.print(
            f"[yellow]warning:[/] {failed} row(s) could not be sent to the model; see the "
            "`error` column",
            soft_wrap=True,
        )
        raise typer.Exit(code=EXIT_SKIPPED)


def _print_comparison(
    metrics: dict[str, Any], compared: dict[str, Any] | None, compare: Path | None
) -> None:
    from rich.table import Table

    from plait.utils.tables import print_table

    table = Table(title="zero-shot labelling")
    table.add_column("metric")
    table.add_column("large model", justify="right")
    if compared is not None:
        table.add_column(escape(f"aligned model ({compare})"), justify="right")
    for key in ("accuracy", "macro_f1", "samples", "unknown_labels", "skipped_rows"):
        row = [key, _shown(metrics.get(key))]
        if compared is not None:
            row.append(_shown(compared.get(key)))
        table.add_row(*row)
    print_table(table)


def _print_confusion(confusion: Any) -> None:
    from rich.table import Table

    from plait.utils.tables import print_table

    table = Table(title="confusion (rows: true class, columns: large model's answer)")
    table.add_column("")
    for name in confusion.columns:
        table.add_column(escape(str(name)), justify="right")
    for name, row in confusion.iterrows():
        table.add_row(escape(str(name)), *(str(int(v)) for v in row))
    print_table(table)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
