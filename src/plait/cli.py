"""The `plait` command line. Each command mirrors a function of the Python API.

Heavy imports (torch, Lightning) happen inside the commands so `plait --help` is instant.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape

from plait.utils.commands import EXIT_SKIPPED

if TYPE_CHECKING:
    import pandas as pd

    from plait.api import DataCheck
    from plait.config import PlaitConfig
    from plait.errors import RowProblem

app = typer.Typer(
    name="plait",
    help="Plait: multimodal deep learning (text, image, audio) from a table to a model.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
if TYPE_CHECKING:
    from plait.data.bad_rows import BadRows

console = Console(stderr=True)
data_app = typer.Typer(
    help="Build ready-made data sets (AV-MNIST, digits, captioned scenes and tones).",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")
index_app = typer.Typer(
    help="Build, grow and search an index of embeddings (aligned models).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(index_app, name="index")


class OnError(str, Enum):
    """What predict / evaluate / embed / zeroshot do with a row they cannot read."""

    raise_ = "raise"
    skip = "skip"


class CompareSplit(str, Enum):
    """Which split `plait report` compares runs on."""

    valid = "valid"
    test = "test"


_ON_ERROR_HELP = (
    "What to do with a row whose file cannot be read (missing, corrupt, empty...): "
    "`raise` refuses the table, `skip` {skip}, lists every bad row in {where} and exits "
    "3. Never taken from the training config's data.on_error."
)


def _on_error_option(skip: str, where: str) -> Any:
    return typer.Option(
        "--on-error", case_sensitive=False, help=_ON_ERROR_HELP.format(skip=skip, where=where)
    )


def _bad_rows_exit(report: BadRows | None, listed_in: Path | None, hint: str = "") -> None:
    """Print a summary of the skipped rows (count, the first few, the list file) and
    exit with EXIT_SKIPPED; nothing when no row was skipped."""
    if not report:
        return
    text = report.summary(listed_in) + (f"\n{hint}" if hint else "")
    console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)
    raise typer.Exit(code=EXIT_SKIPPED)


def _print_table(table: Any) -> None:
    """Every table a command prints: fitted to a terminal, never cut when piped (the rule
    is `plait.utils.tables.print_table`'s)."""
    from plait.utils.tables import print_table

    print_table(table)


def _run(action):
    """Run a command body; Plait's own errors print as one clear message, no traceback
    (`plait.utils.commands.run_command`, shared with the commands beside their packages)."""
    from plait.utils.commands import run_command

    return run_command(action)


@app.command()
def demo(
    which: Annotated[
        str, typer.Argument(help="`fusion` (classification) or `retrieval` (alignment + search).")
    ] = "fusion",
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for data, runs and reports [default: plait-demo[-retrieval]]."),
    ] = None,
    rows: Annotated[
        int | None, typer.Option(help="Training rows to generate [default: 900 / 800].")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per model [default: 10 / 15].")] = None,
    fusions: Annotated[str, typer.Option(help="Comma-separated fusion methods.")] = "concat,gated",
) -> None:
    """Train on built-in generated data, in a few minutes on a laptop CPU.

    [bold]plait demo[/] (fusion): three unimodal baselines against fusions; open
    plait-demo/report/comparison.html. [bold]plait demo retrieval[/]: align images and
    captions of coloured shapes, index the images with FAISS, search them by text (HTML
    contact sheets in plait-demo-retrieval/sheets/) and classify them zero-shot.

    Example: [bold]plait demo retrieval --out plait-demo-retrieval[/]
    """

    def action() -> None:
        if which == "retrieval":
            from plait.demo_retrieval import run_retrieval_demo

            found = run_retrieval_demo(
                out or Path("plait-demo-retrieval"),
                rows=rows or 800,
                epochs=epochs or 15,
                show=lambda text: console.print(escape(str(text)), soft_wrap=True),
            )
            console.print(
                f"report: {found.run_dir / 'report' / 'report.html'}  "
                f"contact sheets: {found.sheets[0].parent}  ({found.seconds:.0f} s)"
            )
            return
        if which != "fusion":
            raise typer.BadParameter(f"unknown demo `{which}`: choose `fusion` or `retrieval`")
        from plait.demo import run_demo

        result = run_demo(
            out or Path("plait-demo"),
            rows=rows or 900,
            epochs=epochs or 10,
            fusions=tuple(f.strip() for f in fusions.split(",")),
        )
        console.print(f"report: {result.report_path}  ({result.seconds:.0f} s)")

    _run(action)


@app.command()
def train(
    config: Annotated[
        Path,
        typer.Argument(
            help="YAML config (.yaml/.yml), or a table (.csv/.tsv/.parquet/.jsonl) with --label."
        ),
    ],
    label: Annotated[
        str | None,
        typer.Option(help="The label column of a table (no YAML needed): roles are inferred."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="For a table: fast, medium or best (quality against time) [default: medium]."
        ),
    ] = None,
    time_limit: Annotated[
        str | None,
        typer.Option(
            "--time-limit",
            help="Stop training after this long (90s, 10m, 1h); the best model is kept.",
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from checkpoints/last.ckpt.")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key, e.g. --set training.lr=0.01"),
    ] = None,
) -> None:
    """Train a model from a table or a YAML config; writes checkpoints, the model and a report.

    Examples:
      [bold]plait train data/train.csv --label genre[/]   (no YAML: column roles are inferred)
      [bold]plait train data/train.csv --label genre --preset fast --time-limit 10m[/]
      [bold]plait train my.yaml[/]
      [bold]plait train my.yaml --set fusion.method=gated --set training.epochs=20[/]
      [bold]plait train my.yaml --resume[/]   (after an interruption)
    """

    def action() -> None:
        from plait.api import train as train_api
        from plait.autoconfig import CONFIG_SUFFIXES, TABLE_SUFFIXES, is_table_path
        from plait.errors import ConfigError, TrainingInterrupted

        if not is_table_path(config) and config.suffix.lower() not in CONFIG_SUFFIXES:
            raise ConfigError(
                f"{config}: not a config ({', '.join(CONFIG_SUFFIXES)}) or a table "
                f"({', '.join(TABLE_SUFFIXES)})"
            )
        if is_table_path(config) and label is None:
            raise ConfigError(f"{config} is a table: name its label column with --label COLUMN")
        try:
            result = train_api(
                config,
                label=label,
                preset=preset,
                time_limit=time_limit,
                resume=resume,
                overrides=set_ or [],
            )
        except TrainingInterrupted as exc:
            given = [("--label", label), ("--preset", preset), ("--time-limit", time_limit)]
            again = " ".join(
                ["plait train", str(config)]
                + [f"{flag} {value}" for flag, value in given if value is not None]
                + [f"--set {item}" for item in set_ or []]
            )
            console.print(
                f"[yellow]interrupted[/] by {exc.signal_name}: {escape(exc.saved)}. "
                f"Continue with: {escape(again)} --resume",
                soft_wrap=True,
            )
            raise typer.Exit(code=exc.exit_code) from None
        if result.rank != 0:  # a DDP worker process: rank 0 reports the run
            return
        console.print(f"model:  {result.model_dir}")
        console.print(f"report: {result.report_path}")
        console.print(f"config: {result.run_dir / 'config.yaml'}")
        _print_results(result.metrics)

    _run(action)


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="Saved model folder (runs/NAME/model).")],
    data: Annotated[Path, typer.Argument(help="Labelled table: CSV, Parquet or JSONL.")],
    out: Annotated[Path | None, typer.Option(help="Write metrics.json + report.html here.")] = None,
    on_error: Annotated[
        OnError,
        _on_error_option(
            "scores the other rows (metrics say how many were left out)", "OUT/bad_rows.csv"
        ),
    ] = OnError.raise_,
) -> None:
    """Score a saved model on labelled data (an aligned model: retrieval both ways, and
    zero-shot accuracy when the data has class labels).

    A bad row refuses the table by default (metrics on a quietly smaller set would
    mislead); [bold]--on-error skip[/] scores the rest. Exit status: 0, 2 on an error,
    3 when rows were skipped.

    Example: [bold]plait evaluate runs/demo/model test.csv --out eval-report[/]
    """

    def action() -> None:
        from plait.api import evaluate as evaluate_api
        from plait.predictor import load

        predictor = load(model)
        _print_results(evaluate_api(predictor, data, out=out, on_error=on_error.value))
        if out:
            console.print(f"report: {out / 'report.html'}")
        listed = out / "bad_rows.csv" if out else None
        hint = "" if out else "(--out DIR writes the full list to DIR/bad_rows.csv)"
        _bad_rows_exit(predictor.last_bad_rows, listed, hint)

    _run(action)


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="Saved model folder.")],
    data: Annotated[Path, typer.Argument(help="Table to predict: CSV, Parquet or JSONL.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV or Parquet to write.")] = Path(
        "predictions.csv"
    ),
    on_error: Annotated[
        OnError,
        _on_error_option(
            "writes an empty prediction and an `error` for it", "OUTPUT_STEM.bad_rows.csv"
        ),
    ] = OnError.skip,
) -> None:
    """Predict classes and probabilities (or values) for every row.

    One output row per input row, in input order, ids as written. A row whose file
    cannot be read keeps its row with an empty prediction and an `error` column saying
    why, and is listed in [bold]predictions.bad_rows.csv[/] beside the output. Exit
    status: 0 all rows predicted, 2 on an error (nothing written), 3 when rows were
    skipped (output written).

    Example: [bold]plait predict runs/demo/model new.csv -o predictions.csv[/]
    """

    def action() -> None:
        from plait.api import predict as predict_api
        from plait.data.bad_rows import bad_rows_path
        from plait.predictor import load

        predictor = load(model)
        frame = predict_api(predictor, data, output=output, on_error=on_error.value)
        console.print(f"wrote {len(frame)} predictions to {output}")
        _bad_rows_exit(getattr(predictor, "last_bad_rows", None), bad_rows_path(output))

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
        _print_table(render_rich_table(frame, "Robustness"))
        if out:
            console.print(f"report: {out / 'report.html'}")

    _run(action)


@app.command()
def explain(
    model: Annotated[Path, typer.Argument(help="Saved model folder.")],
    data: Annotated[Path, typer.Argument(help="Table to explain: CSV, Parquet or JSONL.")],
    target: Annotated[
        str,
        typer.Option(help="Explain the 'predicted' class, or the true 'label' (needs labels)."),
    ] = "predicted",
    out: Annotated[
        Path | None,
        typer.Option(help="Write attribution.csv, summary.csv and a bar chart here."),
    ] = None,
) -> None:
    """How much each modality (text, image, audio) contributed to each prediction.

    Exact Shapley values over modalities: every subset of modalities is run with the
    others marked missing, the way an empty cell is. Per row, the contributions add up
    to the prediction's probability minus its probability with every modality missing.

    Example: [bold]plait explain runs/demo/model test.csv --out explain[/]
    """

    def action() -> None:
        from plait.api import explain as explain_api
        from plait.evaluation import render_rich_table

        result = explain_api(model, data, target=target, out=out)
        _print_table(render_rich_table(result.summary, "Modality attribution"))
        if out:
            console.print(f"wrote {len(result.rows)} rows of contributions to {out}")

    _run(action)


@app.command()
def report(
    runs: Annotated[
        list[Path], typer.Argument(help="Run folders (each with report/metrics.json).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for comparison.html.")] = Path("comparison"),
    split: Annotated[
        CompareSplit,
        typer.Option(
            case_sensitive=False,
            help="Compare on `valid` (choose a run on it) or `test` (the final score of a "
            "run already chosen).",
        ),
    ] = CompareSplit.valid,
) -> None:
    """Compare several runs in one table and chart, on their validation scores (choose
    on these; `--split test` for the held-out scores once a run is chosen).

    Example: [bold]plait report runs/a runs/b --out comparison[/]
    """

    def action() -> None:
        import json

        from plait.errors import PlaitError
        from plait.evaluation import comparison_table, render_rich_table, write_comparison_report
        from plait.evaluation.comparison import runs_on_split

        table = {}
        for run in runs:
            path = run / "report" / "metrics.json"
            if not path.is_file():
                raise PlaitError(f"{run}: no report/metrics.json (is it a finished run?)")
            table[run.name] = json.loads(path.read_text())
        chosen: Literal["valid", "test"] = "test" if split is CompareSplit.test else "valid"
        missing = runs_on_split(table, chosen)[1]
        if missing:
            console.print(
                f"[yellow]warning:[/] no {chosen} scores in {escape(', '.join(missing))} "
                "(no such split, or trained by an older Plait): their score columns are empty",
                soft_wrap=True,
            )
        html = write_comparison_report(out, table, title="Plait comparison", split=chosen)
        name = "validation" if chosen == "valid" else "test"
        _print_table(render_rich_table(comparison_table(table, chosen), f"comparison ({name})"))
        console.print(f"report: {html}")

    _run(action)


@app.command()
def check(
    config: Annotated[Path, typer.Argument(help="YAML config file.")],
    data: Annotated[
        bool,
        typer.Option(
            "--data",
            help="Also check what train would: model names, data files, columns, every row.",
        ),
    ] = False,
    bad_rows: Annotated[
        Path | None,
        typer.Option(help="With --data: write every bad row (file, row, column, reason) here."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key, e.g. --set data.on_error=skip"),
    ] = None,
) -> None:
    """Validate a config (keys, types, values) and print it fully resolved; with --data,
    validate everything train would before its first step, without training.

    Exit status:
      0  passed (with `data.on_error: skip`, the bad rows listed would be skipped)
      1  bad rows that train would refuse (`data.on_error: raise`)
      2  an error: the config, a missing data file or column, an unloadable model name

    Examples:
      [bold]plait check my.yaml[/]
      [bold]plait check my.yaml --data --bad-rows bad_rows.csv[/]
    """

    def action() -> int:
        from plait.api import as_config

        resolved = as_config(config, set_ or [])
        if not data:
            sys.stdout.write(_used_config_yaml(resolved))
            return 0
        from plait.api import check_data

        result = check_data(resolved)
        _print_data_check(result)
        if bad_rows is not None and result.problems:
            from plait.api import _write_frame

            _write_frame(_problem_frame(result.problems), bad_rows)
            console.print(f"wrote {len(result.problems)} problems to {bad_rows}")
        return 1 if result.blocks_training else 0

    code = _run(action)
    if code:
        raise typer.Exit(code=code)


def _used_config_yaml(config: PlaitConfig) -> str:
    """The resolved config as YAML, without the blocks the run never reads: an aligned
    run has no classifier `head`, and uses `fusion` only for the `itm` / `mlm` heads
    (the saved config.yaml keeps every block)."""
    import yaml

    raw = config.model_dump(mode="json")
    if config.alignment is not None:
        raw.pop("head", None)
        if not {"itm", "mlm"} & set(config.alignment.objective_names):
            raw.pop("fusion", None)
    return yaml.safe_dump(raw, sort_keys=False)


def _print_data_check(result: DataCheck) -> None:
    """The data summary on stdout; each bad row on a line of its own (up to 100)."""
    rows = ", ".join(f"{split} {count}" for split, count in result.rows.items())
    print(f"rows that pass, per split: {rows}")
    if not result.problems:
        return
    policy = result.config.data.on_error
    effect = "train would stop" if policy == "raise" else "train would skip them"
    print(
        f"{result.bad_rows} bad row(s), {len(result.problems)} problem(s) ({effect}, "
        f"data.on_error: {policy}):"
    )
    for problem in result.problems[:100]:
        print(f"  - {problem}")
    if len(result.problems) > 100:
        print(f"  ... and {len(result.problems) - 100} more (--bad-rows FILE writes them all)")


def _problem_frame(problems: list[RowProblem]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        [{"file": p.file, "row": p.row, "column": p.column, "reason": p.reason} for p in problems]
    )


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
        from plait.datasets.avmnist import build_avmnist

        info = build_avmnist(mnist, fsdd, out, subset=subset, noise=noise, seed=seed)
        counts = ", ".join(f"{k} {v}" for k, v in info["counts"].items())
        console.print(f"AV-MNIST in {out}: {counts} ({info['seconds']:.1f} s)")

    _run(action)


@data_app.command("digits")
def data_digits(
    mnist: Annotated[Path, typer.Option(help="Folder with the four MNIST *-ubyte.gz files.")],
    fsdd: Annotated[Path, typer.Option(help="Folder with FSDD recordings.tar.xz + manifest.csv.")],
    out: Annotated[Path, typer.Option(help="Output folder (arrays, manifests, README).")],
    subset: Annotated[
        int | None, typer.Option(min=10, help="Keep N rows per split, stratified by digit.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Picks the images and the text phrasings.")] = 0,
) -> None:
    """Build Digits: each spoken FSDD digit with an MNIST image and a written phrase, for
    training one embedding space over audio, image and text.

    Example: [bold]plait data digits --mnist ../shared/data/mnist --fsdd ../shared/data/fsdd
    --out digits[/]
    """

    def action() -> None:
        from plait.datasets.digits import build_digits

        paths = build_digits(mnist, fsdd, out, seed=seed, subset=subset, progress=True)
        for split, path in paths.items():
            console.print(f"{split}: {path}")

    _run(action)


class CaptionData(str, Enum):
    scenes = "scenes"
    tones = "tones"


@data_app.command("captions")
def data_captions(
    out: Annotated[Path, typer.Argument(help="Output folder (manifests, files, README).")],
    kind: Annotated[
        CaptionData, typer.Option(help="`scenes`: pictures of shapes; `tones`: tone sequences.")
    ] = CaptionData.scenes,
    train: Annotated[int, typer.Option(min=0, help="Training rows.")] = 2000,
    valid: Annotated[int, typer.Option(min=0, help="Validation rows.")] = 200,
    test: Annotated[int, typer.Option(min=0, help="Test rows (seen combinations).")] = 200,
    heldout: Annotated[
        int, typer.Option(min=0, help="Test rows holding combinations never seen in training.")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Same seed, same files.")] = 0,
) -> None:
    """Generate a captioning data set: pictures of 2-3 shapes (or tone sequences) with true
    captions, reference captions, and a held-out split of unseen combinations.

    Example: [bold]plait data captions scenes[/] writes scenes/train.csv, valid.csv, test.csv,
    test_heldout.csv and references.csv.
    """

    def action() -> None:
        if kind is CaptionData.scenes:
            from plait.datasets.captioned_scenes import generate_captioned_scenes as build
        else:
            from plait.datasets.tone_captions import generate_tone_captions as build
        paths = build(out, train, valid, test, heldout, seed=seed)
        for split, path in paths.items():
            console.print(f"{split}: {path}")

    _run(action)


# ----------------------------------------------------------------------------- aligned models
ModalityOption = Annotated[
    str, typer.Option(help="Modality to embed, by name or kind (image, audio, text).")
]
BatchOption = Annotated[int, typer.Option(min=1, help="Rows embedded per batch.")]


@app.command()
def embed(
    model: Annotated[Path, typer.Argument(help="Saved aligned model folder.")],
    data: Annotated[Path, typer.Argument(help="Table of items: CSV, Parquet or JSONL.")],
    modality: ModalityOption,
    out: Annotated[
        Path, typer.Option(help="Output: .parquet (ids, vectors, metadata) or .npy.")
    ] = Path("embeddings.parquet"),
    batch_size: BatchOption = 64,
    on_error: Annotated[
        OnError,
        _on_error_option(
            "leaves it out of the vectors (which cannot be empty)", "OUT_STEM.bad_rows.csv"
        ),
    ] = OnError.skip,
) -> None:
    """Embed one modality of every row with an aligned model, into a file of vectors.

    Rows without the modality have no vector. A row whose file cannot be read has none
    either: by default it is skipped (one bad file does not stop a large collection) and
    listed in [bold]OUT_STEM.bad_rows.csv[/] beside the output. Exit status: 0, 2 on an
    error, 3 when rows were skipped.

    Example: [bold]plait embed runs/clip/model photos.csv --modality image --out emb.parquet[/]
    """

    def action() -> None:
        from plait.api import embed as embed_api
        from plait.data.bad_rows import bad_rows_path
        from plait.retrieval.search import load_aligned

        predictor = load_aligned(model)
        ids, vectors = embed_api(
            predictor,
            data,
            modality,
            out=out,
            batch_size=batch_size,
            progress=True,
            on_error=on_error.value,
        )
        console.print(f"wrote {len(ids)} embeddings ({vectors.shape[1]} dims) to {out}")
        _bad_rows_exit(predictor.last_bad_rows, bad_rows_path(out))

    _run(action)


@index_app.command("build")
def index_build(
    model: Annotated[Path, typer.Argument(help="Saved aligned model folder.")],
    data: Annotated[Path, typer.Argument(help="Table of items: CSV, Parquet or JSONL.")],
    modality: ModalityOption,
    out: Annotated[Path, typer.Option(help="Index folder to write.")],
    kind: Annotated[
        str, typer.Option(help="auto, exact, hnsw or ivfpq (auto: exact for small sets).")
    ] = "auto",
    batch_size: BatchOption = 64,
) -> None:
    """Embed one modality of a table and save a searchable index of it.

    Example: [bold]plait index build runs/clip/model photos.csv --modality image --out
    photos-index[/] then [bold]plait search photos-index --text "a dog"[/]
    """

    def action() -> None:
        from plait.retrieval.search import build_index

        index = build_index(
            model, data, modality, out, kind=kind, batch_size=batch_size, progress=True
        )
        console.print(f"index of {len(index)} items ({index.kind}, {index.dim} dims) in {out}")

    _run(action)


@index_app.command("add")
def index_add(
    index: Annotated[Path, typer.Argument(help="Index folder (from plait index build).")],
    data: Annotated[Path, typer.Argument(help="Table of new items: CSV, Parquet or JSONL.")],
    batch_size: BatchOption = 64,
) -> None:
    """Embed new rows with the index's model and add them to the index.

    Example: [bold]plait index add photos-index new-photos.csv[/]
    """

    def action() -> None:
        from plait.retrieval.search import add_to_index

        grown = add_to_index(index, data, batch_size=batch_size, progress=True)
        console.print(f"index {index} now holds {len(grown)} items")

    _run(action)


TextQuery = Annotated[str | None, typer.Option("--text", help="Search with this text.")]
ImageQuery = Annotated[
    Path | None,
    typer.Option("--image", help="Search with this image: a file or a `file.npy#row` cell."),
]
AudioQuery = Annotated[
    Path | None,
    typer.Option("--audio", help="Search with this audio: a file or a `file.npy#row` cell."),
]
ShowColumns = Annotated[
    str | None,
    typer.Option(
        "--show",
        help="Comma-separated columns of the indexed table to show per hit, e.g. "
        "name,caption (default: the indexed column and the label).",
    ),
]
HitsOut = Annotated[
    Path | None,
    typer.Option("--out", help="Also write the hits as .csv, .json (records) or .parquet."),
]
TopK = Annotated[int, typer.Option("-k", "--k", min=1, help="Number of hits.")]
HtmlOut = Annotated[
    Path | None, typer.Option("--html", help="Also write a contact sheet of image hits.")
]
QueryModel = Annotated[
    Path | None, typer.Option("--model", help="Model to embed the query (default: the index's).")
]


@index_app.command("search")
def index_search(
    index: Annotated[Path, typer.Argument(help="Index folder (from plait index build).")],
    text: TextQuery = None,
    image: ImageQuery = None,
    audio: AudioQuery = None,
    k: TopK = 10,
    html: HtmlOut = None,
    model: QueryModel = None,
    show: ShowColumns = None,
    out: HitsOut = None,
) -> None:
    """Search an index with one text, image or audio query (same as [bold]plait search[/]).

    Example: [bold]plait index search photos-index --text "a dog on a beach" -k 5[/]
    """
    _run(lambda: _search(index, text, image, audio, k, html, model, show, out))


@app.command("search")
def search_command(
    index: Annotated[Path, typer.Argument(help="Index folder (from plait index build).")],
    text: TextQuery = None,
    image: ImageQuery = None,
    audio: AudioQuery = None,
    k: TopK = 10,
    html: HtmlOut = None,
    model: QueryModel = None,
    show: ShowColumns = None,
    out: HitsOut = None,
) -> None:
    """Find the items of an index nearest to one text, image or audio query.

    A query takes any form the training data takes: a text, a file, or a row
    of a NumPy array file ([bold]--image images.npy#4[/]). [bold]--show[/] picks
    the columns of the indexed table printed with each hit (an index keeps every
    column of its table).

    Examples:
      [bold]plait search photos-index --text "a dog on a beach" -k 5 --html dogs.html[/]
      [bold]plait search photos-index --image query.png --show name,caption --out hits.csv[/]
    """
    _run(lambda: _search(index, text, image, audio, k, html, model, show, out))


def _search(
    index: Path,
    text: str | None,
    image: Path | None,
    audio: Path | None,
    k: int,
    html: Path | None,
    model: Path | None,
    show: str | None = None,
    out: Path | None = None,
) -> None:
    from rich.table import Table

    from plait.errors import PlaitError
    from plait.retrieval.search import contact_sheet, load_index, search, shown_columns

    if out is not None and out.suffix.lower() not in HITS_FORMATS:
        raise PlaitError(f"--out {out}: write hits to {', '.join(HITS_FORMATS)}")
    loaded = load_index(index)
    if html is not None and loaded.info.get("kind") != "image":
        raise PlaitError(
            f"--html draws image hits, but this index holds {loaded.info.get('kind')} items"
        )
    wanted = _split_list(show) if show is not None else None
    columns = shown_columns(loaded, wanted)
    drawn = str(loaded.info.get("column"))
    fetched = [*columns, drawn] if html is not None and drawn not in columns else columns
    hits = search(loaded, text=text, image=image, audio=audio, k=k, model=model, show=fetched)
    shown = hits[["rank", "id", "score", *columns]]
    query = str(hits.attrs.get("query", ""))
    table = Table(title=escape(f"{hits.attrs.get('query_kind')} query: {query}"))
    for column in shown.columns:
        table.add_column(escape(str(column)), justify="right" if column == "score" else "left")
    for row in shown.itertuples(index=False):
        table.add_row(
            *(_cell(column, value) for column, value in zip(shown.columns, row, strict=True))
        )
    _print_table(table)
    if out is not None:
        _write_hits(shown, out)
        console.print(f"wrote {len(shown)} hits to {out}")
    if html is not None:
        page = contact_sheet(hits, html, query, drawn, show=columns)
        console.print(f"contact sheet: {page}")


HITS_FORMATS = (".csv", ".json", ".parquet")


def _write_hits(hits: pd.DataFrame, path: Path) -> None:
    """The hits as CSV, JSON records or Parquet (by the extension), written atomically."""
    from plait.utils.io import atomic_write

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        atomic_write(path, lambda tmp: hits.to_parquet(tmp, index=False))
    elif suffix == ".json":
        atomic_write(path, lambda tmp: hits.to_json(tmp, orient="records", indent=2))
    else:
        atomic_write(path, lambda tmp: hits.to_csv(tmp, index=False))


def _split_list(text: str) -> list[str]:
    """`"a, b,,c"` -> `["a", "b", "c"]`."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _cell(column: object, value: object) -> str:
    if column == "score" and isinstance(value, float):
        return f"{value:.4f}"
    return escape(str(value))


@app.command()
def zeroshot(
    model: Annotated[Path, typer.Argument(help="Saved aligned model folder (with a text tower).")],
    data: Annotated[Path, typer.Argument(help="Table to classify: CSV, Parquet or JSONL.")],
    classes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated class names (default: the model's classes); for names "
            "with commas use --class or --classes-file."
        ),
    ] = None,
    class_: Annotated[
        list[str] | None,
        typer.Option("--class", help="One class name, taken whole (repeat for more)."),
    ] = None,
    classes_file: Annotated[
        Path | None,
        typer.Option(help="Text file of class names, one per line (blank lines skipped)."),
    ] = None,
    template: Annotated[
        list[str] | None,
        typer.Option(help='Prompt template with {} for the class, e.g. "a photo of a {}".'),
    ] = None,
    modality: Annotated[
        str | None, typer.Option(help="Modality to classify (default: the non-text one).")
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Column of true class names (default: the model's).")
    ] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="CSV or Parquet to write.")] = Path(
        "predictions.csv"
    ),
    on_error: Annotated[
        OnError,
        _on_error_option(
            "writes an empty prediction and an `error` for it", "OUT_STEM.bad_rows.csv"
        ),
    ] = OnError.skip,
) -> None:
    """Classify rows with no training: each row gets the class whose prompt is nearest.

    One output row per input row, as [bold]plait predict[/]: a row with nothing to
    classify (an empty cell, or a file that cannot be read) has an empty prediction and
    an `error`. Exit status: 0, 2 on an error, 3 when unreadable rows were skipped.

    Class names come from [bold]--classes a,b,c[/], [bold]--class[/] (repeatable, a
    name may hold commas) or [bold]--classes-file[/] (one per line), in that order when
    combined.

    Example: [bold]plait zeroshot runs/clip/model test.csv --classes "cat,dog" --template
    "a photo of a {}" --out predictions.csv[/]
    """

    def action() -> None:
        from plait.api import zeroshot as zeroshot_api
        from plait.data.bad_rows import bad_rows_path
        from plait.retrieval.search import load_aligned

        predictor = load_aligned(model)
        names = _class_names(classes, class_, classes_file) or None
        result = zeroshot_api(
            predictor,
            data,
            names,
            template or None,
            modality=modality,
            label=label,
            out=out,
            on_error=on_error.value,
        )
        console.print(f"wrote {len(result.predictions)} predictions to {out}")
        if result.metrics is not None:
            _print_metrics(result.metrics)
        _bad_rows_exit(predictor.last_bad_rows, bad_rows_path(out))

    _run(action)


def _class_names(classes: str | None, single: list[str] | None, path: Path | None) -> list[str]:
    """Class names from --classes (split on commas), --class and --classes-file (one a
    line), in that order; a name given twice is an error (its scores would collide)."""
    from plait.errors import PlaitError

    names = _split_list(classes) if classes else []
    names += [c.strip() for c in single or [] if c.strip()]
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise PlaitError(f"--classes-file {path}: cannot read it ({exc})") from None
        from_file = [line.strip() for line in lines if line.strip()]
        if not from_file:
            raise PlaitError(f"--classes-file {path}: no class names in it (one per line)")
        names += from_file
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise PlaitError(f"class name(s) given more than once: {repeated[:5]}")
    return names


@app.command()
def similarity(
    model: Annotated[Path, typer.Argument(help="Saved aligned model folder.")],
    text: Annotated[list[str] | None, typer.Option(help="A text (repeat for more).")] = None,
    image: Annotated[list[Path] | None, typer.Option(help="An image file (repeatable).")] = None,
    audio: Annotated[list[Path] | None, typer.Option(help="An audio file (repeatable).")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the matrix as CSV.")] = None,
) -> None:
    """Cosine similarity between the values of two modalities, as a matrix.

    Rows are the first given of --image, --audio, --text; columns the second.

    Example: [bold]plait similarity runs/clip/model --image cat.png --text "a cat" --text
    "a dog"[/]
    """

    def action() -> None:
        from rich.table import Table

        from plait.api import similarity as similarity_api
        from plait.utils.io import atomic_write

        given = {"image": image, "audio": audio, "text": text}
        values = {kind: list(v) for kind, v in given.items() if v}
        frame = similarity_api(model, **values)
        rows, columns = list(values)[:2] if len(values) >= 2 else ("", "")
        table = Table(title=f"cosine similarity ({rows} x {columns})")
        table.add_column(rows, style="cyan")
        for column in frame.columns:
            table.add_column(escape(str(column)), justify="right")
        for name, row in frame.iterrows():
            table.add_row(escape(str(name)), *(f"{v:.4f}" for v in row))
        _print_table(table)
        if out is not None:
            atomic_write(out, lambda tmp: frame.to_csv(tmp))
            console.print(f"wrote {out}")

    _run(action)


def _print_results(metrics: dict) -> None:
    """The metrics table; an aligned model's retrieval table (zero-shot in its caption) too.

    A run with a test split prints its validation scores (what to choose runs on) first,
    and the test scores apart, under a title that says they were scored once.
    """
    valid = metrics.get("valid")
    if isinstance(valid, dict):
        _print_split(valid, "validation: choose runs on these")
        _print_split(metrics, "test: held out, scored once after training")
    else:  # a run without a test split reports its validation scores
        _print_split(metrics, "validation" if metrics.get("split") == "valid" else None)


def _print_split(metrics: dict, title: str | None) -> None:
    if isinstance(metrics.get("retrieval"), dict):
        from plait.evaluation import render_retrieval_table

        _print_table(render_retrieval_table(metrics))
    _print_metrics(metrics, f"metrics ({title})" if title else "metrics")


def _print_metrics(metrics: dict, title: str = "metrics") -> None:
    from rich.table import Table

    table = Table(title=escape(title))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    _print_table(table)


@app.command("caption-scores")
def caption_scores(
    predictions: Annotated[Path, typer.Argument(help="Table of generated captions (id, caption).")],
    references: Annotated[
        Path, typer.Argument(help="Table of reference captions; repeat an id for several.")
    ],
    id_column: Annotated[str, typer.Option("--id", help="Id column in both tables.")] = "id",
    caption_column: Annotated[
        str, typer.Option("--caption", help="Caption column in both tables.")
    ] = "caption",
    meteor: Annotated[
        bool | None,
        typer.Option("--meteor/--no-meteor", help="METEOR needs Java; default: when present."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Write each caption's scores to this CSV.")
    ] = None,
) -> None:
    """Score generated captions: BLEU-1..4, ROUGE-L, CIDEr-D, METEOR (COCO's scorers)."""

    def action() -> None:
        from plait.api import _write_frame
        from plait.evaluation.caption_metrics import score_caption_tables

        scores = score_caption_tables(
            predictions,
            references,
            id_column=id_column,
            caption_column=caption_column,
            meteor=meteor,
        )
        _print_metrics(scores.corpus, f"caption scores ({len(scores.per_caption)} captions)")
        for metric, reason in scores.skipped.items():
            console.print(f"[yellow]{metric} skipped[/]: {escape(reason)}", soft_wrap=True)
        if output is not None:
            _write_frame(scores.per_caption, output)
            console.print(f"per-caption scores: {output}")

    _run(action)


from plait.caption_cli import caption_command  # noqa: E402
from plait.compress.cli import prune_command, quantize_command  # noqa: E402
from plait.export.cli import export_command  # noqa: E402
from plait.serve.cli import serve_command  # noqa: E402
from plait.vlm_cli import describe_command, label_command  # noqa: E402

app.command("caption")(caption_command)
app.command("export")(export_command)
app.command("prune")(prune_command)
app.command("quantize")(quantize_command)
app.command("serve")(serve_command)
app.command("describe")(describe_command)
app.command("label")(label_command)

from plait.vqa_cli import ask_command, data_vqa_command  # noqa: E402

app.command("ask")(ask_command)
data_app.command("vqa")(data_vqa_command)


if __name__ == "__main__":  # pragma: no cover
    app()
