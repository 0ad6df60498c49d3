"""Embedding throughput: items/s for small image and audio towers on CPU.

    python bench/embed.py                     # 1,024 generated items per modality
    python bench/embed.py --items 4096 --batch-size 128

For each tower (an untrained aligned model: throughput does not depend on the weights)
two numbers, in one run:
  * model only: embedding already-collated tensors (the encoder + projection forward);
  * end to end: `AlignedPredictor.embed` over a manifest of files (PNG / WAV decode,
    resize or log-mel, collate, forward), what `plait embed` does.
The demo generator makes the files (32x32 RGB images resized to 64, 0.5 s 16 kHz clips).

Prints a table and writes bench/results/embed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from plait.alignment.build import build_aligned_model
from plait.alignment.predictor import AlignedPredictor
from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.threads import configure_threads

RESULTS = Path(__file__).parent / "results"

TOWERS = {
    "image": {"kind": "image", "column": "image", "size": 64, "augment": False,
              "encoder": {"type": "image_cnn", "dim": 128, "layers": 3}},
    "audio": {"kind": "audio", "column": "audio", "sample_rate": 16000, "duration": 0.5,
              "n_mels": 64, "encoder": {"type": "audio_cnn", "dim": 128, "layers": 3}},
}  # fmt: skip


def config_for(data: Path, out: Path, tower: str, batch_size: int) -> PlaitConfig:
    return PlaitConfig.from_dict(
        {
            "name": f"embed-{tower}",
            "output_dir": str(out),
            "data": {"train": str(data / "train.csv"), "split": {"valid": 0.0, "test": 0.0}},
            "modalities": {
                tower: TOWERS[tower],
                "caption": {"kind": "text", "column": "caption", "encoder": {"type": "text_cnn"}},
            },
            "alignment": {"pair": [tower, "caption"], "dim": 128},
            "training": {"batch_size": batch_size, "progress": False},
        }
    )


def measure(predictor: AlignedPredictor, data: Path, tower: str, batch_size: int) -> dict:
    ids, _ = predictor.embed(data / "train.csv", tower, batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    ids, vectors = predictor.embed(data / "train.csv", tower, batch_size=batch_size)
    end_to_end = time.perf_counter() - start

    processor = predictor.processors[tower]
    sample = processor.transform(
        processor.load(_first_value(data, tower), data), False, torch.Generator()
    )
    batch = processor.collate([sample] * batch_size)
    rounds = max(1, len(ids) // batch_size)
    with torch.inference_mode():
        predictor.model.embed(tower, batch)  # warm-up
        start = time.perf_counter()
        for _ in range(rounds):
            predictor.model.embed(tower, batch)
        model_only = time.perf_counter() - start
    return {
        "tower": f"{tower} ({TOWERS[tower]['encoder']['type']})",
        "items": len(ids),
        "dim": int(vectors.shape[1]),
        "model_items_per_s": round(rounds * batch_size / model_only, 1),
        "end_to_end_items_per_s": round(len(ids) / end_to_end, 1),
    }


def _first_value(data: Path, tower: str) -> Any:
    import pandas as pd

    return pd.read_csv(data / "train.csv")[tower].dropna().iloc[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="0: Plait's default")
    args = parser.parse_args()
    threads = configure_threads(args.threads, processes=1, workers=0)

    from plait.datasets.demo import generate_demo

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate_demo(data, n_train=args.items, n_test=8, seed=0, missing_rate=0.0)
        for tower in TOWERS:
            config = config_for(data, Path(tmp), tower, args.batch_size)
            prepared = prepare_data(config, progress=False)
            model = build_aligned_model(config, prepared.processors)
            predictor = AlignedPredictor(model, config, prepared.processors)
            rows.append(measure(predictor, data, tower, args.batch_size))

    header = "| tower | items | dim | model only (items/s) | end to end (items/s) |"
    print(header)
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['tower']} | {r['items']} | {r['dim']} | {r['model_items_per_s']} "
            f"| {r['end_to_end_items_per_s']} |"
        )
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "threads": threads,
        "batch_size": args.batch_size,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "embed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"threads: {threads}; wrote {RESULTS / 'embed.json'}")


if __name__ == "__main__":
    main()
