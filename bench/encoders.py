"""Shape and cost of every scratch encoder: widths per block, parameters, and the time of
one training step (forward, a linear classifier's cross-entropy, backward, SGD; the
fastest of up to 10, and the median) at batch
32 on this machine's CPU. Images at 28, 64 and 224 pixels (RGB); audio at the default
log-mel map (64 mel bins x 201 frames: 2 s at 16 kHz, hop 160); text at 64 tokens.

    python bench/encoders.py                  # all rows
    python bench/encoders.py --only image_cnn --sizes 28,64

`image_cnn` and `audio_cnn` appear twice: with `dim`/`layers` left to `auto` (the
default) and with the old fixed default (dim 128, 2 blocks).
Prints a table and writes bench/results/encoders.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from plait.config import AudioModality, ImageModality, TextModality
from plait.encoders import build_encoder

BATCH = 32
CLASSES = 10
OLD_DEFAULT = {"dim": 128, "layers": 2}


def rows(sizes: list[int]) -> list[tuple[str, str, Any, dict[str, torch.Tensor]]]:
    """(encoder label, input label, modality config, one batch of inputs)."""
    out: list[tuple[str, str, Any, dict[str, torch.Tensor]]] = []
    for size in sizes:
        pixels = {"pixel_values": torch.randn(BATCH, 3, size, size)}
        for label, encoder in (
            ("image_cnn (auto)", {"type": "image_cnn"}),
            ("image_cnn (dim 128, 2 blocks)", {"type": "image_cnn", **OLD_DEFAULT}),
            ("image_lenet (dim 128)", {"type": "image_lenet"}),
        ):
            modality = ImageModality(column="image", size=size, encoder=encoder)
            out.append((label, f"{size}x{size}", modality, pixels))
    audio = AudioModality(column="audio")
    frames = int(audio.duration * audio.sample_rate) // audio.hop_length + 1
    spectrogram = {"features": torch.randn(BATCH, 1, audio.n_mels, frames)}
    for label, encoder in (
        ("audio_cnn (auto)", {"type": "audio_cnn"}),
        ("audio_cnn (dim 128, 2 blocks)", {"type": "audio_cnn", **OLD_DEFAULT}),
        ("audio_lenet (dim 128)", {"type": "audio_lenet"}),
        ("audio_transformer (dim 128, 2 layers)", {"type": "audio_transformer"}),
    ):
        modality = AudioModality(column="audio", encoder=encoder)
        out.append((label, f"{audio.n_mels}x{frames} log-mel", modality, spectrogram))
    ids = torch.randint(1, 20000, (BATCH, 64))
    tokens = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    for kind in ("text_cnn", "text_gru", "text_transformer"):
        modality = TextModality(column="text", encoder={"type": kind})
        out.append((f"{kind} (dim 128, 2 layers)", "64 tokens", modality, tokens))
    return out


def step_ms(
    encoder: torch.nn.Module, inputs: dict[str, torch.Tensor], budget: float
) -> tuple[float, float]:
    """Fastest and median milliseconds of one training step (1 warm-up step, then at
    least 3 timed, more while under `budget` seconds, at most 10). The fastest is the
    figure to compare on a machine shared with other jobs: contention only adds time."""
    head = torch.nn.Linear(encoder.output_dim, CLASSES)
    params = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    targets = torch.randint(0, CLASSES, (BATCH,))
    encoder.train()
    times: list[float] = []
    start = time.perf_counter()
    for i in range(11):
        began = time.perf_counter()
        optimizer.zero_grad()
        loss = F.cross_entropy(head(encoder(**inputs).pooled), targets)
        loss.backward()
        optimizer.step()
        if i >= 1:
            times.append(time.perf_counter() - began)
        if len(times) >= 3 and time.perf_counter() - start > budget:
            break
    return 1000 * min(times), 1000 * statistics.median(times)


def step_gflops(encoder: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    """GFLOPs of one training step (forward + backward), counted by torch: the cost
    figure that does not depend on what else the machine is running."""
    from torch.utils.flop_counter import FlopCounterMode

    head = torch.nn.Linear(encoder.output_dim, CLASSES)
    counter = FlopCounterMode(display=False)
    with counter:
        loss = F.cross_entropy(head(encoder(**inputs).pooled), torch.zeros(BATCH).long())
        loss.backward()
    encoder.zero_grad()
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="28,64,224", help="image sizes, comma-separated")
    parser.add_argument("--only", default="", help="keep rows whose encoder label starts so")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per row, about")
    parser.add_argument("--out", default="bench/results/encoders.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    results = []
    print(
        f"{'encoder':40} {'input':20} {'params':>10} {'GFLOPs':>8} {'ms/step':>9} {'median':>9}  widths"
    )
    for label, shape, modality, inputs in rows([int(s) for s in args.sizes.split(",")]):
        if not label.startswith(args.only):
            continue
        encoder = build_encoder(modality, vocab_size=20000, load_weights=False)
        params = sum(p.numel() for p in encoder.parameters())
        gflops = step_gflops(encoder, inputs)
        ms, median = step_ms(encoder, inputs, args.budget)
        summary = getattr(encoder, "summary", "")
        widths = summary.split("widths ")[1].split(",")[0] if "widths " in summary else ""
        cfg = modality.encoder
        row = {
            "encoder": label,
            "input": shape,
            "dim": cfg.dim,
            "layers": cfg.layers,
            "widths": widths,
            "summary": summary,
            "params": params,
            "gflops_per_step": round(gflops, 2),
            "ms_per_step": round(ms, 1),
            "ms_per_step_median": round(median, 1),
        }
        results.append(row)
        print(
            f"{label:40} {shape:20} {params:>10,} {gflops:>8.2f} {ms:>9.1f} {median:>9.1f}  {widths}",
            flush=True,
        )
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"batch": BATCH, "machine": machine, "rows": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
