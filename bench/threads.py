"""CPU intra-op threads: time a training step of small BatchNorm CNNs at 1 and 2+ threads,
on a quiet machine and with one busy process competing for a core.

    python bench/threads.py            # prints a table, writes bench/results/threads.json

Why: Plait picks a default thread count (`plait.threads.default_threads`); this is the
measurement behind it. Times are medians of interleaved repeats; ratios are against
1 thread in the same condition, measured in the same process.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn


def small_cnn(channels: int, width: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(3):
        layers += [
            nn.Conv2d(channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def step_seconds(model: nn.Module, batch: torch.Tensor, repeats: int = 20) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    target = torch.randint(0, 10, (batch.shape[0],))
    for _ in range(3):  # warm-up
        nn.functional.cross_entropy(model(batch), target).backward()
        opt.step()
        opt.zero_grad()
    start = time.perf_counter()
    for _ in range(repeats):
        nn.functional.cross_entropy(model(batch), target).backward()
        opt.step()
        opt.zero_grad()
    return (time.perf_counter() - start) / repeats


def _spin() -> None:
    while True:
        pass


def measure(cases: dict, counts: list[int], repeats: int = 3) -> dict[str, dict[int, float]]:
    """Median step time per case and thread count, thread counts interleaved per repeat."""
    samples: dict[str, dict[int, list[float]]] = {c: {n: [] for n in counts} for c in cases}
    for _ in range(repeats):
        for name, (model, batch) in cases.items():
            for n in counts:
                torch.set_num_threads(n)
                samples[name][n].append(step_seconds(model, batch, repeats=8))
    return {c: {n: statistics.median(v) for n, v in by_n.items()} for c, by_n in samples.items()}


def main() -> None:
    torch.manual_seed(0)
    cases = {
        "image 32x32 w32 b32": (small_cnn(3, 32), torch.randn(32, 3, 32, 32)),
        "image 28x28 w16 b64": (small_cnn(1, 16), torch.randn(64, 1, 28, 28)),
        "log-mel 32x51 w32 b32": (small_cnn(1, 32), torch.randn(32, 1, 32, 51)),
        "image 64x64 w64 b32": (small_cnn(3, 64), torch.randn(32, 3, 64, 64)),
    }
    counts = sorted({1, 2, os.cpu_count() or 1})
    rows = []
    for condition in ("quiet", "one busy process"):
        busy = None
        if condition != "quiet":
            busy = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
            busy.start()
        try:
            timing = measure(cases, counts)
        finally:
            if busy is not None:
                busy.terminate()
        for name, times in timing.items():
            rows.append(
                {
                    "condition": condition,
                    "case": name,
                    **{f"{n}t_ms": round(t * 1000, 1) for n, t in times.items()},
                    **{f"{n}t_vs_1t": round(t / times[1], 2) for n, t in times.items() if n != 1},
                }
            )
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[k]) for k in header))
    out = Path(__file__).parent / "results" / "threads.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {"cpu_count": os.cpu_count(), "torch": torch.__version__, "rows": rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
