"""One training run: data -> the task's model -> Lightning fit -> the trained model.

`fit` returns what it trained (`TrainedRun`: the model with its best weights, the fitted
processors and labels, the prepared data and the run's facts); it builds no predictor
and writes no report: `plait.api.train` evaluates, saves `model/` and writes `report/`.

Run folder (`<output_dir>/<name>/`)::

    config.yaml        resolved config (written before training starts)
    checkpoints/       last.ckpt and best.ckpt, written atomically; `--resume` reads last
    logs/              CSV and TensorBoard logs
    bad_rows.csv       every rejected row (file, row, column, reason) when there were any
    model/             the saved model (written by plait.api.train)
    report/            metrics.json + report.html (written by plait.api.train)
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from plait.config import PlaitConfig, Precision, monitor_mode
from plait.data import LabelSpace, PreparedData, prepare_data
from plait.errors import PlaitError, TrainingInterrupted
from plait.threads import configure_threads
from plait.training.checkpoint_io import AtomicCheckpointIO
from plait.training.datamodule import PlaitDataModule, question_groups
from plait.training.frozen import restore_frozen
from plait.training.frozen_cache import frozen_output_caches
from plait.training.module import PlaitModule, TrainingModule
from plait.training.nonfinite import NonFiniteMetricStop
from plait.training.steps import few_steps_notice
from plait.training.task import TrainingTask
from plait.utils.io import atomic_write
from plait.utils.params import parameter_counts

log = logging.getLogger("plait")

# Expected states that Lightning warns about while it trains: frozen pretrained towers
# stay in eval mode on purpose, and batches move to the device through
# PlaitModule.transfer_batch_to_device. Silenced only around `trainer.fit`.
_EXPECTED_WARNINGS = (
    r"Found \d+ module\(s\) in eval mode",
    r"You have overridden `transfer_batch_to_device`",
    r".*isinstance\(treespec, LeafSpec\)",  # Lightning-internal
)


@contextmanager
def _expected_warnings_silenced() -> Iterator[None]:
    """Lightning's warnings about states Plait chose, hidden for this block only: the
    process's warning filters are as they were afterwards."""
    with warnings.catch_warnings():
        for message in _EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


def _quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (accelerator lines, tips) out of Plait's output;
    its warnings and errors still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass
class TrainedRun:
    """What `fit` trained: enough to evaluate, save and report it.

    Attributes:
        model: the task's model with the best checkpoint's weights (on the CPU).
        data: the prepared splits, processors and labels the run used.
        facts: what the run measured about itself, for metrics.json (`train_seconds`,
            `params`, `epochs`, `threads`, skipped rows, skipped non-finite batches).
        before: the task's metrics before training (pretrained towers), or None.
        device: where to evaluate (the training device).
        rank: the DDP process; only rank 0 saves the model and report.
    """

    run_dir: Path
    config: PlaitConfig
    model: Any
    data: PreparedData
    train_seconds: float
    epochs_run: int
    facts: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] | None = None
    device: str = "cpu"
    rank: int = 0

    @property
    def processors(self) -> dict[str, Any]:
        return self.data.processors

    @property
    def labels(self) -> LabelSpace | None:
        return self.data.labels

    @property
    def problems(self) -> list:
        return self.data.problems


def fit(
    config: PlaitConfig,
    task: TrainingTask,
    *,
    resume: bool = False,
    run_dir: Path | None = None,
) -> TrainedRun:
    """Train `config` as `task` (a row of `plait.tasks.TASKS`) and return what it trained.

    With `resume=True` the run continues from `checkpoints/last.ckpt` in the same run
    folder and ends exactly where an uninterrupted run would have.
    """
    _quiet_lightning()
    run_dir = Path(run_dir or Path(config.output_dir) / config.name)
    checkpoint_dir = run_dir / "checkpoints"
    last = checkpoint_dir / "last.ckpt"
    if resume and not last.is_file():
        raise PlaitError(f"cannot resume: {last} does not exist (start without --resume)")
    if not resume and last.is_file():
        raise PlaitError(
            f"{run_dir} already holds a run; pass --resume to continue it, "
            "or choose another `name` / `output_dir`"
        )
    # under DDP every process runs this function; only the first one writes run files
    # `rank` is set on the function object by Lightning at import; its stubs omit it
    writer = rank_zero_only.rank == 0  # type: ignore[attr-defined]
    run_dir.mkdir(parents=True, exist_ok=True)
    if writer:
        config.to_yaml(run_dir / "config.yaml")
    threads = configure_threads(
        config.training.threads,
        processes=_cpu_processes(config.training),
        workers=config.training.num_workers,
    )
    pl.seed_everything(config.training.seed, workers=True, verbose=False)

    data = prepare_data(config)
    if writer:
        _write_problems(run_dir, data.problems)
        notice = few_steps_notice(len(data.train), config.training)
        if notice is not None:
            log.warning(notice)
    model = task.build(config, data.processors, data.labels)
    module = PlaitModule(model, task.step(config, data), config.training)
    before = task.baseline(model, config, data) if writer else None
    trainer = _trainer(config, run_dir, has_valid=data.valid is not None)
    log.info("training %s with %d CPU threads", config.name, threads)

    # Lightning's CSV logger starts metrics.csv afresh: keep the epochs before the resume
    history = _read_history(run_dir) if resume and writer else None
    start = time.perf_counter()
    try:
        with _expected_warnings_silenced(), frozen_output_caches(model, config):
            datamodule = PlaitDataModule(data, config.training, *question_groups(config))
            stopped_by = _fit_interruptibly(trainer, module, datamodule, last, resume)
    finally:
        if history is not None:
            _merge_history(run_dir, history)
    train_seconds = time.perf_counter() - start
    if stopped_by is not None:
        epochs_done = _checkpoint_epochs(last)
        raise TrainingInterrupted(stopped_by, str(run_dir), str(last), epochs_done)
    device = "cuda" if _uses_gpu(config.training.accelerator) else "cpu"
    run = TrainedRun(
        run_dir, config, model, data, train_seconds, trainer.current_epoch, device=device
    )
    if trainer.global_rank != 0:
        run.rank = trainer.global_rank
        return run

    _load_best(module, checkpoint_dir / "best.ckpt")
    run.model = module.model.cpu()
    run.before = before
    run.facts = {
        "train_seconds": round(train_seconds, 2),
        **parameter_counts(model),
        "epochs": trainer.current_epoch,
        "threads": threads,
    }
    if config.training.time_limit is not None:
        run.facts["time_limit"] = _time_limit_fact(trainer, config)
    if data.problems:  # the metrics leave these rows out: say so beside them
        run.facts["skipped_rows"] = {
            "total": sum(data.skipped_rows.values()),
            "per_split": data.skipped_rows,
            "list": str(run_dir / "bad_rows.csv"),
        }
    if config.training.on_nonfinite == "skip":
        run.facts["nonfinite_batches_skipped"] = module.nonfinite_skipped
        if module.nonfinite_skipped:
            log.warning(
                "%d training batch(es) skipped for a non-finite loss (training.on_nonfinite: "
                "skip); see the warnings above for their steps and rows",
                module.nonfinite_skipped,
            )
    return run


def _time_limit_fact(trainer: pl.Trainer, config: PlaitConfig) -> dict[str, Any]:
    """Whether `training.time_limit` stopped the run (said in the log and metrics.json)."""
    from lightning.pytorch.callbacks import Timer

    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)  # type: ignore[attr-defined]
    remaining = timer.time_remaining("train") if timer is not None else None
    stopped = remaining is not None and remaining <= 0
    if stopped:
        log.warning(
            "time limit %s reached after %d of %d epoch(s); the model is the best checkpoint "
            "so far",
            config.training.time_limit,
            trainer.current_epoch,
            config.training.epochs,
        )
    return {"limit": config.training.time_limit, "stopped_training": stopped}


def _fit_interruptibly(
    trainer: pl.Trainer,
    module: TrainingModule,
    datamodule: PlaitDataModule,
    last: Path,
    resume: bool,
) -> str | None:
    """`trainer.fit`; returns the signal that stopped it ("SIGINT", "SIGTERM") or None.

    On Ctrl-C Lightning shuts down gracefully, then calls `sys.exit(1)` and leaves SIGINT
    ignored; on SIGTERM it stops after the current batch with a `SystemExit` whose status
    is 0, as if the run had finished. Undo all three: the caller (the CLI, a notebook)
    learns which signal stopped the run and gets its own Ctrl-C handler back. Either way
    `last.ckpt` (written when training starts and after every epoch) is there to resume.
    """
    handler = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None)
    except SIGTERMException:
        return "SIGTERM"
    except SystemExit as exc:
        if not isinstance(exc.__context__, KeyboardInterrupt):
            raise
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)
    return "SIGINT" if trainer.interrupted else None


def _checkpoint_epochs(path: Path) -> int:
    """Finished epochs recorded in a Lightning checkpoint (0 when unreadable).

    `processed`, not `completed`: Lightning counts an epoch completed only after the
    epoch-end callbacks, one of which writes `last.ckpt`.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError):
        return 0
    loops = state.get("loops", {}).get("fit_loop", {})
    processed = loops.get("epoch_progress", {}).get("current", {}).get("processed")
    return int(processed) if isinstance(processed, int) else 0


def _history_path(run_dir: Path) -> Path:
    return run_dir / "logs" / "csv" / "metrics.csv"


def _read_history(run_dir: Path) -> pd.DataFrame | None:
    """The CSV logger's table so far (None when there is none yet)."""
    path = _history_path(run_dir)
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    return None if frame.empty else frame


def _merge_history(run_dir: Path, before: pd.DataFrame) -> None:
    """metrics.csv = the epochs logged before a resume + those logged after it."""
    after = _read_history(run_dir)
    if after is not None and "epoch" in after and len(after):
        before = before[before["epoch"] < after["epoch"].min()]
        before = pd.concat([before, after], ignore_index=True)
    path = _history_path(run_dir)
    atomic_write(path, lambda tmp: before.to_csv(tmp, index=False))


def _trainer(config: PlaitConfig, run_dir: Path, has_valid: bool) -> pl.Trainer:
    cfg = config.training
    monitor = cfg.monitor if has_valid else None
    mode = monitor_mode(cfg)
    callbacks: list[pl.Callback] = [
        NonFiniteMetricStop(),  # before early stopping and the checkpoints see a NaN
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            enable_version_counter=False,
        ),
        _LastCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="last",
            save_top_k=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        ),
    ]
    if cfg.early_stopping and monitor:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=cfg.early_stopping))
    if cfg.progress:
        callbacks.append(RichProgressBar(leave=True))
    loggers: list[Any] = [CSVLogger(run_dir / "logs", name="csv", version="")]
    if cfg.tensorboard:
        loggers.append(TensorBoardLogger(run_dir / "logs", name="tensorboard", version=""))
    strategy: Any = cfg.strategy
    if cfg.strategy == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        backend = "nccl" if _uses_gpu(cfg.accelerator) else "gloo"
        strategy = DDPStrategy(process_group_backend=backend)
    limit = cfg.time_limit_seconds
    return pl.Trainer(
        max_epochs=cfg.epochs,
        max_time=timedelta(seconds=limit) if limit is not None else None,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=strategy,
        precision=_precision(cfg.precision, cfg.accelerator),
        gradient_clip_val=cfg.grad_clip or None,
        accumulate_grad_batches=cfg.accumulate,
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        # PlaitDataModule's EpochSampler already gives each DDP process its own shard;
        # Lightning's DistributedSampler on top would shard it again and drop half the rows
        use_distributed_sampler=False,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        log_every_n_steps=1,  # Plait logs per epoch; this only silences a warning
        num_sanity_val_steps=0 if not has_valid else 1,
        limit_val_batches=1.0 if has_valid else 0,
        deterministic=False,
        default_root_dir=run_dir,
    )


class _LastCheckpoint(ModelCheckpoint):
    """`last.ckpt` when training starts and at the end of every epoch: what `--resume`
    continues from, so a run stopped during its first epoch can resume too.

    Lightning's own `save_last=True` writes `last.ckpt` only when a top-k checkpoint was
    saved at the same step (so it would lag behind at the last improvement). A subclass
    also gets its own callback state key, so it can sit beside the `best` checkpoint.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        assert self.dirpath is not None
        last = Path(self.dirpath) / f"{self.filename}{self.FILE_EXTENSION}"
        if trainer.global_step == 0 and trainer.current_epoch == 0 and not last.is_file():
            trainer.save_checkpoint(last)


def _cpu_processes(cfg: Any) -> int:
    """Training processes sharing this machine's cores (DDP on CPU starts `devices`)."""
    if cfg.strategy in ("ddp", "fsdp") and not _uses_gpu(cfg.accelerator):
        return cfg.devices if isinstance(cfg.devices, int) else os.cpu_count() or 1
    return 1


def _uses_gpu(accelerator: str) -> bool:
    return accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())


def _precision(
    precision: Precision, accelerator: str
) -> Literal["32-true", "16-mixed", "bf16-mixed"]:
    """`auto`: bf16 mixed precision on GPUs that support it, fp16 mixed on older ones,
    full fp32 on CPU (CPU autocast is slower than fp32 for these small models)."""
    if precision != "auto":
        return "32-true" if precision == "32" else precision
    if _uses_gpu(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def _load_best(module: TrainingModule, best: Path) -> None:
    if best.is_file():
        checkpoint = torch.load(best, map_location="cpu", weights_only=True)
        restore_frozen(checkpoint, module)  # frozen towers are held by reference
        module.load_state_dict(checkpoint["state_dict"])


def _write_problems(run_dir: Path, problems: list) -> None:
    path = run_dir / "bad_rows.csv"
    if problems:
        frame = pd.DataFrame(
            [
                {"file": p.file, "row": p.row, "column": p.column, "reason": p.reason}
                for p in problems
            ]
        )
        frame.to_csv(path, index=False)
        rows = len({(p.file, p.row) for p in problems})
        log.warning("%d bad row(s) skipped (%d problem(s)); see %s", rows, len(problems), path)
    elif path.exists():
        path.unlink()
