"""One training run, end to end: data -> model -> Lightning fit -> saved model -> report.

Run folder (`<output_dir>/<name>/`)::

    config.yaml        resolved config (written before training starts)
    checkpoints/       last.ckpt and best.ckpt, written atomically; `--resume` reads last
    logs/              CSV and TensorBoard logs
    bad_rows.csv       every rejected row (file, row, column, reason) when there were any
    model/             the saved model (see plait.predictor)
    report/            metrics.json + report.html
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from plait.alignment.build import build_aligned_model, text_tokens
from plait.alignment.predictor import AlignedPredictor
from plait.build import build_model
from plait.config import PlaitConfig, Precision
from plait.data import PreparedData, prepare_data
from plait.errors import PlaitError
from plait.evaluation import load_history, write_report
from plait.objectives import TaskLoss
from plait.objectives.alignment import AlignmentObjective
from plait.predictor import Predictor
from plait.threads import configure_threads
from plait.training.align_module import AlignmentModule
from plait.training.checkpoint_io import AtomicCheckpointIO
from plait.training.datamodule import PlaitDataModule
from plait.training.module import PlaitModule, TrainingModule
from plait.training.nonfinite import NonFiniteMetricStop
from plait.utils.io import atomic_write, atomic_write_json

log = logging.getLogger("plait")

# Expected states that Lightning warns about: frozen pretrained towers stay in eval mode
# on purpose, and batches move to the device through PlaitModule.transfer_batch_to_device.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
warnings.filterwarnings("ignore", message=r"You have overridden `transfer_batch_to_device`")
warnings.filterwarnings(
    "ignore", message=r".*isinstance\(treespec, LeafSpec\)"
)  # Lightning-internal


def _quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (accelerator lines, tips) out of Plait's output;
    its warnings and errors still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass
class RunResult:
    """What a finished run produced."""

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


def fit(config: PlaitConfig, *, resume: bool = False, run_dir: Path | None = None) -> RunResult:
    """Train `config` and return the saved predictor with its test metrics.

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
    module = _module(config, data)
    model = module.model
    before = _pretrained_baseline(config, data, model) if writer else None
    trainer = _trainer(config, run_dir, has_valid=data.valid is not None)
    log.info("training %s with %d CPU threads", config.name, threads)

    # Lightning's CSV logger starts metrics.csv afresh: keep the epochs before the resume
    history = _read_history(run_dir) if resume and writer else None
    start = time.perf_counter()
    try:
        _fit_interruptibly(trainer, module, PlaitDataModule(data, config.training), last, resume)
    finally:
        if history is not None:
            _merge_history(run_dir, history)
    train_seconds = time.perf_counter() - start
    if trainer.interrupted:
        raise KeyboardInterrupt(f"training interrupted; continue with --resume ({run_dir})")
    if trainer.global_rank != 0:
        return RunResult(
            run_dir,
            _predictor(model, config, data),
            {},
            train_seconds,
            trainer.current_epoch,
            data.problems,
            rank=trainer.global_rank,
        )

    _load_best(module, checkpoint_dir / "best.ckpt")
    # test evaluation on the training device (a GPU when there is one); the predictor
    # handed back and saved lives on the CPU
    device = "cuda" if _uses_gpu(config.training.accelerator) else "cpu"
    predictor = _predictor(module.model.to(device), config, data)
    metrics = _evaluate(predictor, data)
    predictor.model.cpu()
    if before is not None:
        metrics["before_training"] = before
        metrics["warnings"] = forgetting_warnings(before, metrics)
        for line in metrics["warnings"]:
            log.warning(line)
    metrics["train_seconds"] = round(train_seconds, 2)
    metrics["params"] = sum(p.numel() for p in model.parameters())
    metrics["epochs"] = trainer.current_epoch
    metrics["threads"] = threads
    if data.problems:  # the metrics leave these rows out: say so beside them
        metrics["skipped_rows"] = {
            "total": sum(data.skipped_rows.values()),
            "per_split": data.skipped_rows,
            "list": str(run_dir / "bad_rows.csv"),
        }
    if config.training.on_nonfinite == "skip":
        metrics["nonfinite_batches_skipped"] = module.nonfinite_skipped
        if module.nonfinite_skipped:
            log.warning(
                "%d training batch(es) skipped for a non-finite loss (training.on_nonfinite: "
                "skip); see the warnings above for their steps and rows",
                module.nonfinite_skipped,
            )
    predictor.metrics = metrics
    predictor.save(run_dir / "model")
    if config.evaluation.report:
        write_report(
            run_dir / "report",
            metrics,
            task="alignment" if config.alignment is not None else config.head.task,
            history=load_history(run_dir / "logs"),
            title=f"Plait report: {config.name}",
            config_yaml=config.to_yaml(),
        )
    else:
        atomic_write_json(run_dir / "report" / "metrics.json", metrics)
    return RunResult(
        run_dir, predictor, metrics, train_seconds, trainer.current_epoch, data.problems
    )


def _fit_interruptibly(
    trainer: pl.Trainer,
    module: TrainingModule,
    datamodule: PlaitDataModule,
    last: Path,
    resume: bool,
) -> None:
    """`trainer.fit`, with Ctrl-C left to the caller as a KeyboardInterrupt.

    On Ctrl-C Lightning shuts down gracefully, then calls `sys.exit(1)` and leaves SIGINT
    ignored. Undo both: the caller (the CLI, a notebook) gets `trainer.interrupted` and
    its own Ctrl-C handler back.
    """
    handler = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None)
    except SystemExit as exc:
        if not isinstance(exc.__context__, KeyboardInterrupt):
            raise
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)


def _history_path(run_dir: Path) -> Path:
    return run_dir / "logs" / "csv" / "metrics.csv"


def _read_history(run_dir: Path) -> pd.DataFrame | None:
    return load_history(_history_path(run_dir))


def _merge_history(run_dir: Path, before: pd.DataFrame) -> None:
    """metrics.csv = the epochs logged before a resume + those logged after it."""
    after = _read_history(run_dir)
    if after is not None and "epoch" in after and len(after):
        before = before[before["epoch"] < after["epoch"].min()]
        before = pd.concat([before, after], ignore_index=True)
    path = _history_path(run_dir)
    atomic_write(path, lambda tmp: before.to_csv(tmp, index=False))


def _module(config: PlaitConfig, data: PreparedData) -> TrainingModule:
    """The Lightning module for the run: alignment objectives, or a supervised head."""
    if config.alignment is not None:
        aligned = build_aligned_model(config, data.processors)
        objective = AlignmentObjective(config.alignment, text_tokens(config, data.processors))
        label_relevance = config.alignment.relevance == "label" and data.labels is not None
        return AlignmentModule(aligned, objective, config.training, label_relevance)
    if data.labels is None:
        raise PlaitError("a supervised run needs `data.label`")
    model = build_model(config, data.processors, data.labels.num_outputs)
    return PlaitModule(model, _task_loss(config, data), config.training)


def _predictor(model: Any, config: PlaitConfig, data: PreparedData) -> Predictor | AlignedPredictor:
    if config.alignment is not None:
        return AlignedPredictor(model, config, data.processors, data.labels)
    assert data.labels is not None
    return Predictor(model, config, data.processors, data.labels)


def _pretrained_baseline(
    config: PlaitConfig, data: PreparedData, model: Any
) -> dict[str, Any] | None:
    """Retrieval and zero-shot metrics of pretrained towers before fine-tuning, so a run
    can warn when fine-tuning destroys what they knew. None for models trained from
    scratch (their "before" is chance)."""
    if config.alignment is None:
        return None
    pretrained = any(
        config.modalities[n].encoder.type == "huggingface" for n in config.aligned_pair
    )
    if not pretrained:
        return None
    metrics = _evaluate(_predictor(model, config, data), data)
    model.train()
    return metrics


def forgetting_warnings(before: dict[str, Any], after: dict[str, Any], tolerance: float = 0.01):
    """One line per retrieval recall or zero-shot accuracy that fell during fine-tuning."""
    lines = []
    pairs = [
        (f"{direction} R@{k}", before["retrieval"][direction].get(f"R@{k}"),
         after.get("retrieval", {}).get(direction, {}).get(f"R@{k}"))
        for direction in before.get("retrieval", {})
        for k in (1, 5)
    ]  # fmt: skip
    pairs += [
        (f"zero-shot {name} accuracy", value.get("accuracy"),
         after.get("zeroshot", {}).get(name, {}).get("accuracy"))
        for name, value in before.get("zeroshot", {}).items()
    ]  # fmt: skip
    for label, old, new in pairs:
        if old is not None and new is not None and new < old - tolerance:
            lines.append(
                f"fine-tuning lowered {label} from {old:.3f} to {new:.3f}: the pretrained "
                "model lost knowledge (try a lower lr, fewer epochs or a frozen tower)"
            )
    return lines


def _task_loss(config: PlaitConfig, data: PreparedData) -> TaskLoss:
    """`class_weights: balanced` -> class weights (classification) or positive-label
    weights (multilabel), counted on the rows actually trained on."""
    weights = None
    if (
        config.head.class_weights == "balanced"
        and config.head.task != "regression"
        and data.labels is not None
    ):
        weights = torch.as_tensor(data.labels.class_weights(data.train), dtype=torch.float32)
    return TaskLoss(config.head, weights)


def _trainer(config: PlaitConfig, run_dir: Path, has_valid: bool) -> pl.Trainer:
    cfg = config.training
    monitor = cfg.monitor if has_valid else None
    mode = "max" if any(k in (monitor or "") for k in ("accuracy", "f1", "auroc", "R@")) else "min"
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
    return pl.Trainer(
        max_epochs=cfg.epochs,
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
    """`last.ckpt` at the end of every epoch, what `--resume` continues from.

    Lightning's own `save_last=True` writes `last.ckpt` only when a top-k checkpoint was
    saved at the same step (so it would lag behind at the last improvement). A subclass
    also gets its own callback state key, so it can sit beside the `best` checkpoint.
    """


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
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)


def _evaluate(predictor: Predictor | AlignedPredictor, data: PreparedData) -> dict[str, Any]:
    """Metrics on the test split (valid split when there is no test split)."""
    for split, dataset in (("test", data.test), ("valid", data.valid)):
        if dataset is not None and len(dataset) > 0:
            metrics = predictor.evaluate(dataset)
            metrics["split"] = split
            return metrics
    return {"split": None, "note": "no validation or test rows to evaluate on"}


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
