"""Speed: Plait's training loop against a plain PyTorch loop, data-pipeline throughput,
and peak memory.

    python bench/speed.py                         # demo data (generated), all parts
    python bench/speed.py --config configs/avmnist-concat.yaml --parts loop,memory

(a) loop: the same model (build_model), data (one prepared dataset, one DataLoader
    setup) and batch size, trained for `--epochs` by (1) a hand-written loop: forward,
    loss, backward, clip, AdamW/SGD step, LR schedule; and (2) Plait's Lightning trainer as
    `plait train` builds it (progress bar off, logging and per-epoch checkpoints on).
    The first epoch of each is warm-up and not counted; the two alternate per repeat.
(b) data: samples/s through Dataset + collate for the same rows read as files (decode
    PNG + WAV, log-mel) and as in-memory arrays (pre-decoded images and waveforms in a
    DataFrame, log-mel still computed); for a config whose cells are .npy array cells
    (AV-MNIST) the array-cell throughput alone, as those rows are decoded already.
(c) memory: peak resident memory of `plait train` for the config, in a child process.

Prints a table and writes bench/results/speed.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from plait.build import build_model
from plait.config import PlaitConfig
from plait.data import EpochSampler, MultimodalDataset, prepare_data, read_table
from plait.threads import configure_threads

RESULTS = Path(__file__).parent / "results"


def demo_config(root: Path, rows: int) -> PlaitConfig:
    from plait.datasets.demo import generate_demo
    from plait.demo import demo_config as demo_raw

    generate_demo(root / "data", n_train=rows, n_test=rows // 4)
    raw = demo_raw(root / "data", root, epochs=1)
    raw["training"].update(progress=False, tensorboard=False)
    raw["data"]["split"]["valid"] = 0.0
    return PlaitConfig.from_dict(raw)


# ------------------------------------------------------------------------------ (a)
def plain_epochs(config: PlaitConfig, data, epochs: int) -> list[float]:
    """A hand-written loop doing what Plait's step does, nothing more."""
    from plait.objectives import TaskLoss
    from plait.training.module import warmup_schedule

    torch.manual_seed(config.training.seed)
    model = build_model(config, data.processors, data.labels.num_outputs)
    loss_fn = TaskLoss(config.head)
    cfg = config.training
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = EpochSampler(len(data.train), shuffle=True, seed=cfg.seed)
    loader = DataLoader(
        data.train,
        batch_size=cfg.batch_size,
        sampler=sampler,
        collate_fn=data.train.collate,
        num_workers=cfg.num_workers,
    )
    total = epochs * len(loader)
    sched = warmup_schedule(opt, total, int(cfg.warmup_ratio * total), cfg.scheduler)
    times = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        data.train.set_epoch(epoch)
        model.train()
        start = time.perf_counter()
        for batch in loader:
            loss = loss_fn(model(batch.inputs, batch.presence), batch.labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
        times.append(time.perf_counter() - start)
    return times


def plait_epochs(config: PlaitConfig, data, epochs: int, run_dir: Path) -> list[float]:
    """Plait's trainer exactly as `fit` builds it; epoch times from a callback."""
    import lightning.pytorch as pl

    from plait.tasks import task_of
    from plait.training.datamodule import PlaitDataModule
    from plait.training.fit import _trainer
    from plait.training.module import PlaitModule

    class EpochTimer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_epoch_start(self, trainer, module) -> None:
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module) -> None:
            self.times.append(time.perf_counter() - self.start)

    torch.manual_seed(config.training.seed)
    cfg = config.model_copy(
        update={
            "training": config.training.model_copy(update={"epochs": epochs, "progress": False})
        }
    )
    task = task_of(cfg)
    module = PlaitModule(
        task.build(cfg, data.processors, data.labels), task.step(cfg, data), cfg.training
    )
    trainer = _trainer(cfg, run_dir, has_valid=False)
    timer = EpochTimer()
    trainer.callbacks.append(timer)
    trainer.fit(module, datamodule=PlaitDataModule(data, cfg.training))
    return timer.times


def bench_loop(config: PlaitConfig, epochs: int, repeats: int) -> dict[str, Any]:
    data = prepare_data(config, progress=False)
    plain, plait_ = [], []
    for r in range(repeats):
        order = ("plain", "plait") if r % 2 == 0 else ("plait", "plain")
        for name in order:
            if name == "plain":
                plain += plain_epochs(config, data, epochs)[1:]
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    plait_ += plait_epochs(config, data, epochs, Path(tmp))[1:]
    p, q = statistics.median(plain), statistics.median(plait_)
    return {
        "train_rows": len(data.train),
        "batch_size": config.training.batch_size,
        "epochs_counted": len(plain),
        "plain_s_per_epoch": round(p, 3),
        "plait_s_per_epoch": round(q, 3),
        "ratio_plait_vs_plain": round(q / p, 3),
    }


# ------------------------------------------------------------------------------ (b)
def throughput(dataset: MultimodalDataset, batch_size: int, passes: int = 2) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=dataset.collate)
    start = time.perf_counter()
    count = 0
    for _ in range(passes):
        for batch in loader:
            count += len(batch)
    return count / (time.perf_counter() - start)


def in_memory_frame(config: PlaitConfig, data) -> Any:
    """The training rows with every image and audio cell decoded into numpy arrays."""
    from plait.data import load_audio, load_image

    table = read_table(config.data.train)
    frame = table.frame.iloc[data.train.rows].reset_index(drop=True).copy()
    for modality in config.modalities.values():
        column = modality.column
        if modality.kind == "image":
            frame[column] = [
                np.asarray(load_image(table.base_dir / v, modality.max_pixels, modality.channels))
                if isinstance(v, str) and v
                else None
                for v in frame[column]
            ]
        elif modality.kind == "audio":
            frame[column] = [
                load_audio(table.base_dir / v, modality.sample_rate)
                if isinstance(v, str) and v
                else None
                for v in frame[column]
            ]
    return frame


def bench_data(config: PlaitConfig) -> dict[str, Any]:
    from plait.data import prepare_inference

    data = prepare_data(config, progress=False)
    batch = config.training.batch_size
    files = throughput(data.train, batch)
    if _uses_array_cells(config):
        # rows are already decoded arrays (memory-mapped .npy): nothing to compare against
        return {"rows": len(data.train), "array_cells_samples_per_s": round(files, 1)}
    memory_ds, _ = prepare_inference(
        in_memory_frame(config, data), config, data.processors, data.labels, progress=False
    )
    arrays = throughput(memory_ds, batch)
    return {
        "rows": len(data.train),
        "files_samples_per_s": round(files, 1),
        "in_memory_samples_per_s": round(arrays, 1),
        "in_memory_vs_files": round(arrays / files, 2),
    }


def _uses_array_cells(config: PlaitConfig) -> bool:
    from plait.data.arrays import is_array_cell

    frame = read_table(config.data.train).frame
    return any(
        frame[m.column].map(is_array_cell).any()
        for m in config.modalities.values()
        if m.kind in ("image", "audio")
    )


# ------------------------------------------------------------------------------ (c)
def bench_memory(config_path: Path) -> dict[str, Any]:
    """Peak RSS of a whole `plait train` run (a child process, so nothing else counts)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        code = subprocess.call(
            [
                sys.executable,
                "-m",
                "plait.cli",
                "train",
                str(config_path),
                "--set",
                f"output_dir={tmp}",
                "--set",
                "training.progress=false",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "exit_code": code,
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "wall_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="YAML config (default: demo data)")
    parser.add_argument("--rows", type=int, default=600, help="demo rows when no --config")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parts", default="loop,data,memory")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="config override for --config, e.g. training.epochs=1",
    )
    parser.add_argument("--tag", default="", help="suffix of the JSON file's name")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    work = Path(tempfile.mkdtemp(prefix="plait-speed-"))
    if args.config:
        config = PlaitConfig.from_yaml(args.config, args.overrides)
        config_path = work / "speed.yaml"
        config.to_yaml(config_path)
    else:
        config = demo_config(work, args.rows)
        config_path = work / "speed.yaml"
        config.to_yaml(config_path)
    threads = configure_threads(config.training.threads)
    result: dict[str, Any] = {
        "config": str(args.config or f"demo data, {args.rows} rows"),
        "torch_threads": threads,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "num_workers": config.training.num_workers,
    }
    if "loop" in parts:
        result["loop"] = bench_loop(config, args.epochs, args.repeats)
    if "data" in parts:
        result["data"] = bench_data(copy.deepcopy(config))
    if "memory" in parts:
        result["memory"] = bench_memory(config_path)

    for key, value in result.items():
        if isinstance(value, dict):
            print(f"\n[{key}]")
            for k, v in value.items():
                print(f"  {k:28s} {v}")
        else:
            print(f"{key:30s} {value}")
    RESULTS.mkdir(exist_ok=True)
    stem = "speed" if not args.config else f"speed-{Path(args.config).stem}"
    name = f"{stem}-{args.tag}.json" if args.tag else f"{stem}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
