"""The Python API; every function has a CLI twin in `plait.cli`.

import plait
run = plait.train("my.yaml")                    # plait train my.yaml
plait.check_data("my.yaml").problems            # plait check my.yaml --data
model = plait.load(run.model_dir)
model.predict(df)                               # plait predict MODEL DATA -o out.csv
plait.evaluate(model, "test.csv", out="report") # plait evaluate MODEL DATA --out report

Aligned models (trained with an `alignment:` block):
plait.similarity(model, image=["a.png"], text=["a cat", "a dog"])  # plait similarity
plait.embed(model, "photos.csv", "image", out="emb.parquet")      # plait embed
plait.zeroshot(model, "test.csv", classes=["cat", "dog"])          # plait zeroshot
plait.search("photos-index", text="a dog", k=5)                    # plait search

Captioners (trained with a `captioning:` block):
plait.caption(model, ["a.png", "b.png"], num_beams=3)              # plait caption

Question answerers (trained with a `vqa:` block):
plait.ask(model, "a.png", "what shape is the red object?", top_k=3)  # plait ask
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from plait.config import PlaitConfig
from plait.data.bad_rows import BadRows, OnError
from plait.errors import ConfigError, PlaitError, RowProblem
from plait.predictor import Predictor, load

if TYPE_CHECKING:
    from plait.alignment.predictor import AlignedPredictor, ZeroShotResult
    from plait.evaluation.attribution import Attribution
    from plait.retrieval.index import EmbeddingIndex
    from plait.tasks import BasePredictor, Task
    from plait.training import TrainedRun


def as_config(
    config: PlaitConfig | str | Path | dict[str, Any], overrides: list[str] | None = None
) -> PlaitConfig:
    """A PlaitConfig from an object, a YAML path or a plain dict (paths relative to cwd)."""
    if isinstance(config, PlaitConfig):
        if overrides:
            raw = config.model_dump(mode="json")
            return as_config(raw, overrides)
        return config
    if isinstance(config, str | Path):
        return PlaitConfig.from_yaml(config, overrides)
    if isinstance(config, dict):
        from plait.config import apply_override

        raw = dict(config)
        for item in overrides or []:
            apply_override(raw, item)
        return PlaitConfig.from_dict(raw).resolve_paths(Path.cwd())
    raise ConfigError(f"cannot read a config from {type(config).__name__}")


def train(
    config: PlaitConfig | str | Path | dict[str, Any] | pd.DataFrame,
    *,
    label: str | None = None,
    preset: str | None = None,
    time_limit: str | float | None = None,
    resume: bool = False,
    overrides: list[str] | None = None,
) -> RunResult:
    """Train a model; returns the run (model folder, report, metrics, predictor).

    `config` is a config (YAML path, dict or PlaitConfig), or a table (a DataFrame, or a
    .csv/.tsv/.parquet/.jsonl path) with `label=` naming its label column: then each
    column's role is inferred (`plait.autoconfig`), the roles and the resolved config
    are printed, and the config is saved as the run's `config.yaml` to edit and rerun.
    `preset` (`fast`, `medium`, `best`; tables only) trades quality for time;
    `time_limit` (`90s`, `10m`, `1h`) stops training when spent, keeping the best model.

    Pretrained model names are checked first, so a typo fails in seconds, not after
    minutes of download retries.
    """
    from plait.encoders.hub import check_hub_models
    from plait.tasks.init_from import check_init_from

    extra = list(overrides or [])
    if _is_table(config):
        resolved = _auto(config, label, preset, time_limit, extra, resume)
    else:
        if label is not None or preset is not None:
            raise ConfigError(
                "`label` and `preset` are for a table (a DataFrame or a .csv/.tsv/.parquet/"
                ".jsonl file); a config names its label in `data.label`"
            )
        if time_limit is not None:
            extra.append(f"training.time_limit={time_limit}")
        resolved = as_config(cast("PlaitConfig | str | Path | dict[str, Any]", config), extra)
    check_hub_models(resolved)
    check_init_from(resolved)  # a bad `init_from` fails now, not after reading the data
    return train_run(resolved, resume=resume)


def _is_table(config: object) -> bool:
    from plait.autoconfig import is_table_path

    return isinstance(config, pd.DataFrame) or is_table_path(config)


def _auto(
    source: Any,
    label: str | None,
    preset: str | None,
    time_limit: Any,
    overrides: list[str],
    resume: bool,
) -> PlaitConfig:
    """The config inferred from a table, printed (roles, then YAML) on stderr."""
    from rich.console import Console

    from plait.autoconfig import auto_config, roles_table

    if label is None:
        raise ConfigError(
            "training on a table needs the label column: plait train TABLE --label COLUMN "
            "(in Python: plait.train(df, label='column'))"
        )
    found = auto_config(
        source,
        label,
        preset=preset or "medium",
        time_limit=time_limit,
        overrides=overrides,
        fresh=not resume,
    )
    console = Console(stderr=True, soft_wrap=True)
    console.print(roles_table(found.roles))
    console.print(found.config.to_yaml(), markup=False, highlight=False)
    run_dir = Path(found.config.output_dir) / found.config.name
    console.print(
        f"config saved as {run_dir / 'config.yaml'}: edit it and rerun with "
        f"`plait train {run_dir / 'config.yaml'} --set name={found.config.name}-2`",
        markup=False,
        highlight=False,
    )
    return found.config


log = logging.getLogger("plait")


@dataclass
class RunResult:
    """What a finished run produced.

    Attributes:
        run_dir: the run folder (config.yaml, checkpoints/, logs/, model/, report/).
        predictor: the trained model, ready to use (on the CPU).
        metrics: test metrics (valid when there is no test split) with the validation
            metrics under `valid`, and the run's facts, as in `report/metrics.json`;
            empty on DDP processes other than the first.
    """

    run_dir: Path
    predictor: Predictor | AlignedPredictor
    metrics: dict[str, Any]
    train_seconds: float
    epochs_run: int
    problems: list = field(default_factory=list)
    rank: int = 0  # DDP process; only rank 0 saves the model and report (metrics empty elsewhere)

    @property
    def model_dir(self) -> Path:
        return self.run_dir / "model"

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report" / "report.html"


def train_run(
    config: PlaitConfig, *, resume: bool = False, run_dir: Path | None = None
) -> RunResult:
    """Train a resolved config (no hub name check), then evaluate the trained model, save
    `model/` and write `report/` in the run folder (`run_dir`, default
    `<output_dir>/<name>`)."""
    from plait.tasks import task_of
    from plait.tasks.init_from import InitialisedTask
    from plait.training import fit
    from plait.training.task import TrainingTask
    from plait.vlm.feature import describe_training_tables

    task = task_of(config)
    trainer_task: TrainingTask = task
    if config.init_from is not None:  # the towers start from a saved model's
        trainer_task = InitialisedTask(task)
    folder = Path(run_dir or Path(config.output_dir) / config.name)
    describer = None
    if resume or not (folder / "checkpoints" / "last.ckpt").is_file():  # else fit refuses
        config, describer = describe_training_tables(config, folder)  # a large model's text
    trained = fit(config, trainer_task, resume=resume, run_dir=run_dir)
    predictor = task.predictor_of(trained.model, config, trained.processors, trained.labels)
    if describer is not None:
        predictor.descriptions = describer.recorded()
    if trained.rank == 0:  # under DDP the other processes save and report nothing
        predictor.metrics = _run_metrics(task, trained)
        predictor.save(trained.run_dir / "model")
        _write_run_report(task, trained, predictor.metrics)
    return RunResult(
        trained.run_dir,
        _as_run_predictor(predictor),
        predictor.metrics,
        trained.train_seconds,
        trained.epochs_run,
        trained.problems,
        rank=trained.rank,
    )


def _as_run_predictor(predictor: BasePredictor) -> Predictor | AlignedPredictor:
    """Every task's predictor today is one of these two (typing only)."""
    return cast("Predictor | AlignedPredictor", predictor)


def _run_metrics(task: Task, trained: TrainedRun) -> dict[str, Any]:
    """The trained model's metrics, on the training device (a GPU when there is one),
    then what the run measured about itself.

    The test split is scored here, once: its metrics are the top level (`split: test`)
    and the validation metrics, which choose between runs, sit beside them under
    `valid`; without a test split the validation metrics are the top level (`split:
    valid`). With pretrained towers, the validation metrics before training and a
    warning for each that fell.
    """
    model, config, data = trained.model.to(trained.device), trained.config, trained.data
    valid = task.evaluate_split(model, config, data, "valid")
    test = task.evaluate_split(model, config, data, "test")
    trained.model.cpu()
    if test is not None:
        metrics = test
        if valid is not None:
            metrics["valid"] = valid
    elif valid is not None:
        metrics = dict(valid)
    else:
        metrics = {"split": None, "note": "no validation or test rows to evaluate on"}
    if trained.before is not None and valid is not None:
        metrics["before_training"] = trained.before
        metrics["warnings"] = task.forgetting_warnings(trained.before, valid)
        for line in metrics["warnings"]:
            log.warning(line)
    metrics.update(trained.facts)
    return metrics


def _write_run_report(task: Task, trained: TrainedRun, metrics: dict[str, Any]) -> None:
    from plait.evaluation import load_history, write_report
    from plait.utils.io import atomic_write_json

    config, run_dir = trained.config, trained.run_dir
    if config.evaluation.report:
        write_report(
            run_dir / "report",
            metrics,
            task=task.report,
            history=load_history(run_dir / "logs"),
            title=f"Plait report: {config.name}",
            config_yaml=config.to_yaml(),
        )
    else:
        atomic_write_json(run_dir / "report" / "metrics.json", metrics)


@dataclass
class DataCheck:
    """What `check_data` found.

    Attributes:
        config: the config checked.
        rows: split (`train`, `valid`, `test`) -> rows that passed, as training would use them.
        problems: every bad row (file, row, column, reason), in Plait's row numbering,
            ordered by file and row.
    """

    config: PlaitConfig
    rows: dict[str, int]
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def bad_rows(self) -> int:
        return len({(p.file, p.row) for p in self.problems})

    @property
    def blocks_training(self) -> bool:
        """True when `train` would stop on these rows (`data.on_error: raise`)."""
        return bool(self.problems) and self.config.data.on_error == "raise"


def check_data(
    config: PlaitConfig | str | Path | dict[str, Any],
    *,
    overrides: list[str] | None = None,
    progress: bool | None = None,
) -> DataCheck:
    """Validate what `train` would validate, without training: pretrained model names,
    the `init_from` folder, then the data files, columns, split, labels and every row, through the same
    `plait.data.prepare_data` as training, so what it accepts `train` accepts.

    Raises:
        ConfigError: the config, or a pretrained model name that cannot be loaded.
        DataError: a data file that is missing or unreadable, a missing column (with the
            closest existing name), or no valid training row left.
    """
    import tempfile

    from plait.data import prepare_data
    from plait.encoders.hub import check_hub_models
    from plait.tasks.init_from import check_init_from
    from plait.vlm.feature import describe_training_tables

    resolved = as_config(config, overrides)
    check_hub_models(resolved)
    check_init_from(resolved)
    # "collect": every bad row comes back instead of stopping at the on_error policy
    with tempfile.TemporaryDirectory() as scratch:  # a large model's descriptions, as in train
        described, _ = describe_training_tables(resolved, Path(scratch), progress=bool(progress))
        collect = described.data.model_copy(update={"on_error": "collect"})
        prepared = prepare_data(described.model_copy(update={"data": collect}), progress=progress)
    splits = {"train": prepared.train, "valid": prepared.valid, "test": prepared.test}
    rows = {name: len(dataset) for name, dataset in splits.items() if dataset is not None}
    problems = sorted(prepared.problems, key=lambda p: (p.file, p.row))  # stable: columns stay
    return DataCheck(resolved, rows, problems)


def _as_any_predictor(
    model: Predictor | AlignedPredictor | str | Path,
) -> Predictor | AlignedPredictor:
    if isinstance(model, str | Path):
        return load(model)
    return model


_USE_INSTEAD = {  # tasks whose models do not predict columns, and what they do instead
    "vqa": "this is a question-answering model: use plait ask (model.ask(rows))",
    "captioning": "this is a captioning model: use plait caption (model.caption(rows))",
}


def _as_predictor(model: Predictor | AlignedPredictor | str | Path) -> Predictor:
    """A supervised predictor; an aligned model is refused with what to use instead."""
    predictor = _as_any_predictor(model)
    instead = _USE_INSTEAD.get(str(getattr(predictor, "task", "")))
    if instead:
        raise PlaitError(instead)
    if not isinstance(predictor, Predictor):
        raise PlaitError(
            "this is an aligned model (it embeds, it does not predict classes): use "
            "plait zeroshot, embed, similarity or search with it"
        )
    return predictor


def _as_aligned(model: AlignedPredictor | str | Path) -> AlignedPredictor:
    from plait.retrieval.search import load_aligned

    return load_aligned(model)


def evaluate(
    model: Predictor | AlignedPredictor | str | Path,
    data: Any,
    *,
    out: str | Path | None = None,
    on_error: OnError = "raise",
) -> dict[str, Any]:
    """Metrics of a saved model on labelled data; writes a report folder when `out` is set.

    An aligned model reports retrieval in both directions (and zero-shot accuracy when
    the data has class labels) on the rows that have both of its modalities.

    `on_error="raise"` (default) refuses data with a bad row (metrics on a silently
    reduced set would mislead); `skip` scores the good rows, `metrics["skipped_rows"]`
    counts the others and, with `out`, `out/bad_rows.csv` lists them (the list is in
    `model.last_bad_rows` too when `model` is a loaded model).
    """
    from plait.data.bad_rows import check_on_error, write_bad_rows

    predictor = _as_any_predictor(model)
    metrics = predictor.evaluate(data, on_error=check_on_error(on_error))
    if out is not None:
        from plait.evaluation import write_report

        write_report(
            Path(out),
            metrics,
            task=predictor.task,
            title=f"Plait evaluation: {predictor.config.name}",
        )
        write_bad_rows(_bad_rows(predictor, data), Path(out) / "bad_rows.csv")
    return metrics


def _bad_rows(predictor: Predictor | AlignedPredictor, data: Any) -> BadRows | None:
    """The bad rows of the table `data` the predictor just read (none for a dataset)."""
    from plait.data import MultimodalDataset

    return None if isinstance(data, MultimodalDataset) else predictor.last_bad_rows


def predict(
    model: Predictor | AlignedPredictor | str | Path,
    data: Any,
    *,
    output: str | Path | None = None,
    on_error: OnError = "skip",
) -> pd.DataFrame:
    """Predictions (and class probabilities) as a DataFrame; also written to `output`.

    One row per input row, in input order. With `on_error="skip"` (default) a row that
    cannot be read has an empty prediction and an `error` column says why; the loaded
    model's `last_bad_rows` lists every problem and, with `output`, so does
    `<output stem>.bad_rows.csv` beside it. `raise` refuses the table instead.
    """
    from plait.data.bad_rows import bad_rows_path, check_on_error, write_bad_rows

    predictor = _as_predictor(model)
    frame = predictor.predict(data, on_error=check_on_error(on_error))
    if output is not None:
        _write_frame(frame, output)
        write_bad_rows(_bad_rows(predictor, data), bad_rows_path(output))
    return frame


def _write_frame(frame: pd.DataFrame, output: str | Path) -> None:
    """CSV, or Parquet for a `.parquet` path, written atomically."""
    from plait.utils.io import atomic_write

    path = Path(output)
    if path.suffix == ".parquet":
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def explain(
    model: Predictor | AlignedPredictor | str | Path,
    data: Any,
    *,
    target: str = "predicted",
    out: str | Path | None = None,
    batch_size: int = 64,
) -> Attribution:
    """How much each modality contributed to each prediction: exact Shapley values over
    modalities (`plait.evaluation.attribution`). With `out`, writes attribution.csv (one
    row per input row), summary.csv and modality_attribution.png there."""
    from plait.evaluation.attribution import modality_attribution, plot_attribution

    predictor = _as_predictor(model)
    result = modality_attribution(
        predictor,
        data,
        target=target,  # type: ignore[arg-type]  # checked inside, with a clear error
        batch_size=batch_size,
    )
    if out is not None:
        folder = Path(out)
        _write_frame(result.rows, folder / "attribution.csv")
        _write_frame(result.summary.reset_index(), folder / "summary.csv")
        plot_attribution(result.summary, folder / "modality_attribution.png")
    return result


def robustness(
    model: Predictor | AlignedPredictor | str | Path,
    data: Any,
    *,
    noise_levels: tuple[float, ...] = (0.5, 1.0),
    out: str | Path | None = None,
) -> pd.DataFrame:
    """Metrics with each modality missing and noisy (`plait.evaluation.robustness`);
    writes robustness.csv / .json and a report folder when `out` is set."""
    from plait.evaluation import (
        default_conditions,
        evaluate_robustness,
        robustness_section,
        to_jsonable,
        write_report,
    )

    predictor = _as_predictor(model)
    dataset = predictor.prepare(data, require_labels=True)  # as predict reads rows
    conditions = default_conditions(predictor.model.modalities, noise_levels=noise_levels)
    frame = evaluate_robustness(predictor, dataset, conditions)
    if out is not None:
        from plait.utils.io import atomic_write, atomic_write_json

        folder = Path(out)
        atomic_write(folder / "robustness.csv", lambda tmp: frame.to_csv(tmp))
        atomic_write_json(
            folder / "robustness.json", to_jsonable(frame.reset_index().to_dict("records"))
        )
        write_report(
            folder,
            predictor.evaluate(dataset),
            task=predictor.task,
            title=f"Plait robustness: {predictor.config.name}",
            extra_sections=[robustness_section(frame)],
        )
    return frame


# ----------------------------------------------------------------------------- aligned models
def similarity(model: AlignedPredictor | str | Path, **values: Any) -> pd.DataFrame:
    """Cosine similarity between the values of two modalities (names or kinds):
    `similarity(model, image=["a.png"], text=["a cat", "a dog"])` -> a [1 x 2] DataFrame,
    rows the first keyword's values. Paths are relative to the current folder."""
    return _as_aligned(model).similarity(**values)


def embed(
    model: AlignedPredictor | str | Path,
    data: Any,
    modality: str,
    out: str | Path | None = None,
    *,
    batch_size: int = 64,
    progress: bool = False,
    on_error: OnError = "skip",
) -> tuple[list[str], np.ndarray]:
    """Embed one modality of every row that has it: (ids, [N, D] float32 unit vectors).

    With `out` (`.parquet` or `.npy`) the vectors are also written, with the ids and each
    row's metadata (see `plait.retrieval.embed`).

    A vector cannot be empty: with `on_error="skip"` (default) a row whose file cannot
    be read is left out, like a row without the modality, and listed in
    `<out stem>.bad_rows.csv` beside `out` (and in `model.last_bad_rows`); `raise`
    refuses the table.
    """
    from plait.data.bad_rows import bad_rows_path, check_on_error, write_bad_rows
    from plait.retrieval.embed import check_format, embed_rows, write_embeddings

    if out is not None:
        check_format(Path(out))
    predictor = _as_aligned(model)
    ids, vectors, metadata = embed_rows(
        predictor,
        data,
        modality,
        batch_size=batch_size,
        progress=progress,
        on_error=check_on_error(on_error),
    )
    if out is not None:
        write_embeddings(out, ids, vectors, metadata)
        write_bad_rows(predictor.last_bad_rows, bad_rows_path(out))
    return ids, vectors


def zeroshot(
    model: AlignedPredictor | str | Path,
    data: Any,
    classes: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
    *,
    modality: str | None = None,
    label: str | None = None,
    out: str | Path | None = None,
    progress: bool = False,
    on_error: OnError = "skip",
) -> ZeroShotResult:
    """Classify rows by their nearest class prompt ("a photo of a {}"); metrics when the
    data has true classes. `out` writes the predictions (CSV or Parquet).

    One prediction row per input row, as `predict`: with `on_error="skip"` (default) a
    row that cannot be read has an empty prediction and an `error`, is listed in
    `<out stem>.bad_rows.csv` and counted in `metrics["skipped_rows"]`; `raise` refuses.
    """
    from plait.data.bad_rows import bad_rows_path, check_on_error, write_bad_rows

    predictor = _as_aligned(model)
    result = predictor.zeroshot(
        data,
        classes,
        templates=templates,
        modality=modality,
        label=label,
        progress=progress,
        on_error=check_on_error(on_error),
    )
    if out is not None:
        _write_frame(result.predictions, out)
        write_bad_rows(_bad_rows(predictor, data), bad_rows_path(out))
    return result


def search(
    index: EmbeddingIndex | str | Path,
    *,
    text: str | None = None,
    image: Any = None,
    audio: Any = None,
    k: int = 10,
    model: AlignedPredictor | str | Path | None = None,
    show: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The `k` items of an index nearest to one text, image or audio query (a file, a
    `file.npy#row` cell or an array): rank, id, score and the metadata columns `show`
    (default: the indexed column and the label; `plait index build` makes the index)."""
    from plait.retrieval.search import search as _search

    return _search(index, text=text, image=image, audio=audio, k=k, model=model, show=show)


def caption(
    model: BasePredictor | str | Path,
    files: Sequence[str | Path] | None = None,
    *,
    data: Any = None,
    output: str | Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
    on_error: OnError = "skip",
    **decoding: Any,
) -> pd.DataFrame:
    """Captions (`id, caption`) of image / audio `files` or of the rows of a table `data`
    (with the model's source column); also written to `output` (CSV or Parquet).

    `decoding`: `max_length`, `num_beams`, `length_penalty`, `do_sample`, `top_k`,
    `top_p`, `temperature`, `no_repeat_ngram_size`, `seed`, as Hugging Face `generate()`
    (left out: the model's defaults). With files, the id is the path as given. A file
    that cannot be read keeps its row with an empty caption and an `error` (`on_error=
    "skip"`, default) or refuses the call (`raise`).
    """
    from plait.data.bad_rows import bad_rows_path, check_on_error, write_bad_rows
    from plait.tasks.captioning_predictor import CaptioningPredictor

    predictor = load(model) if isinstance(model, str | Path) else model
    if not isinstance(predictor, CaptioningPredictor):
        raise PlaitError(
            f"this is a {predictor.task} model; captions come from a model trained with a "
            "`captioning:` block"
        )
    if (files is None) == (data is None):
        raise PlaitError("caption needs files or a table (`data`), one of the two")
    table = data
    if files is not None:
        column = predictor.config.modalities[predictor.source].column
        table = pd.DataFrame({column: [str(Path(f).resolve()) for f in files]})
        if predictor.config.data.id:
            table[predictor.config.data.id] = [str(f) for f in files]
    frame = predictor.caption(
        table, batch_size=batch_size, progress=progress, on_error=check_on_error(on_error),
        **decoding,
    )  # fmt: skip
    if files is not None:
        frame["id"] = [str(f) for f in files]
    if output is not None:
        _write_frame(frame, output)
        write_bad_rows(predictor.last_bad_rows, bad_rows_path(output))
    return frame


def ask(
    model: BasePredictor | str | Path,
    files: Sequence[str | Path] | str | Path | None = None,
    questions: Sequence[str] | str | None = None,
    *,
    data: Any = None,
    output: str | Path | None = None,
    top_k: int = 1,
    batch_size: int = 64,
    progress: bool = True,
    on_error: OnError = "skip",
) -> pd.DataFrame:
    """Answers (`id, answer, probability`, and the next `top_k - 1` answers) of a question
    answering model (trained with a `vqa:` block) to `questions` about image / audio
    `files` (one question for every file, or one per file), or to the rows of a table
    `data` (with the model's context and question columns); also written to `output`
    (CSV or Parquet). With files, the id is the path as given. A file that cannot be read
    keeps its row with an empty answer and an `error` (`on_error="skip"`, default) or
    refuses the call (`raise`).
    """
    from plait.data.bad_rows import bad_rows_path, check_on_error, write_bad_rows
    from plait.tasks.vqa_predictor import VqaPredictor

    predictor = load(model) if isinstance(model, str | Path) else model
    if not isinstance(predictor, VqaPredictor):
        raise PlaitError(
            f"this is a {predictor.task} model; answers come from a model trained with a "
            "`vqa:` block"
        )
    if (files is None) == (data is None):
        raise PlaitError("ask needs files and questions or a table (`data`), one of the two")
    table = data
    if files is not None:
        paths = [files] if isinstance(files, str | Path) else list(files)
        asked = [questions] * len(paths) if isinstance(questions, str) else list(questions or [])
        if len(asked) != len(paths):
            raise PlaitError(
                f"{len(paths)} file(s) and {len(asked)} question(s): give one question for "
                "every file, or one per file"
            )
        modalities = predictor.config.modalities
        table = pd.DataFrame({
            modalities[predictor.context].column: [str(Path(f).resolve()) for f in paths],
            modalities[predictor.question].column: [str(q) for q in asked],
        })  # fmt: skip
        if predictor.config.data.id:
            table[predictor.config.data.id] = [str(f) for f in paths]
    frame = predictor.ask(
        table, top_k=top_k, batch_size=batch_size, progress=progress,
        on_error=check_on_error(on_error),
    )  # fmt: skip
    if files is not None:
        frame["id"] = [str(f) for f in ([files] if isinstance(files, str | Path) else files)]
    if output is not None:
        _write_frame(frame, output)
        write_bad_rows(predictor.last_bad_rows, bad_rows_path(output))
    return frame
