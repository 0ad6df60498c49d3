"""CPU intra-op threads: time a training step of small BatchNorm CNNs at 1..N threads.

    python bench/threads.py            # prints a table, writes bench/results/threads.json

Why: Plait picks a default thread count (`plait.threads.default_threads`); this is the
measurement behind it. Ratios are against 1 thread, measured in the same process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from torch import nn


def small_cnn(channels: int, width: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(3):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                   nn.MaxPool2d(2)]
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
    for name, (model, batch) in cases.items():
        times = {}
        for n in counts:
            torch.set_num_threads(n)
            times[n] = step_seconds(model, batch)
        rows.append({"case": name, **{f"{n}t_ms": round(t * 1000, 2) for n, t in times.items()},
                     **{f"{n}t_vs_1t": round(t / times[1], 3) for n, t in times.items()}})
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[k]) for k in header))
    out = Path(__file__).parent / "results" / "threads.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "torch": torch.__version__,
                               "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
