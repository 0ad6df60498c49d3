"""Does the `auto` image tower learn at least as well as the old fixed default?

An image-only classifier of the 16 shape concepts (`plait.datasets.shapes`: 32x32 RGB,
640 training rows, 160 validation, 160 test), trained the same way with `image_cnn` at
`dim`/`layers` `auto` (32 pixels: 4 blocks, dim 192) and at the old default (dim 128,
2 blocks): AdamW, lr 2e-3, batch 32, no augmentation, `--epochs` epochs, best epoch on
validation; test accuracy and training time per seed.

    python bench/encoders_quality.py --seeds 0,1 --epochs 10

Prints a table and writes bench/results/encoders-quality.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import plait
from plait.datasets.shapes import generate_shapes

TOWERS = {
    "auto": {"type": "image_cnn"},
    "dim 128, 2 blocks": {"type": "image_cnn", "dim": 128, "layers": 2},
}


def config(
    data: dict[str, Path], out: Path, name: str, encoder: dict, seed: int, epochs: int
) -> dict[str, Any]:
    return {
        "name": name,
        "output_dir": str(out),
        "data": {
            "train": str(data["train"]),
            "valid": str(data["valid"]),
            "test": str(data["test"]),
            "label": "concept",
            "id": "id",
        },
        "modalities": {
            "image": {
                "kind": "image",
                "column": "image",
                "size": 32,
                "augment": False,
                "encoder": encoder,
            }
        },
        "head": {"task": "classification"},
        "training": {
            "epochs": epochs,
            "batch_size": 32,
            "optimizer": "adamw",
            "lr": 2e-3,
            "weight_decay": 0.01,
            "seed": seed,
            "progress": False,
            "tensorboard": False,
        },
        "evaluation": {"report": False},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="bench/results/encoders-quality.json")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_shapes(Path(tmp) / "shapes")
        for seed in [int(s) for s in args.seeds.split(",")]:
            for label, encoder in TOWERS.items():
                raw = config(
                    data,
                    Path(tmp) / "runs",
                    f"s{seed}-{encoder.get('dim', 'auto')}",
                    encoder,
                    seed,
                    args.epochs,
                )
                result = plait.train(raw)
                cfg = result.predictor.config.modalities["image"].encoder
                row = {
                    "tower": label,
                    "seed": seed,
                    "dim": cfg.dim,
                    "layers": cfg.layers,
                    "test_accuracy": round(float(result.metrics["accuracy"]), 4),
                    "train_seconds": result.metrics["train_seconds"],
                    "params": result.metrics["params"],
                }
                rows.append(row)
                print(row, flush=True)
    print(f"\n{'tower':20} {'test accuracy (mean)':>22} {'train s (mean)':>16}")
    for label in TOWERS:
        mine = [r for r in rows if r["tower"] == label]
        accuracy = statistics.mean(r["test_accuracy"] for r in mine)
        seconds = statistics.mean(r["train_seconds"] for r in mine)
        print(f"{label:20} {accuracy:>22.3f} {seconds:>16.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
