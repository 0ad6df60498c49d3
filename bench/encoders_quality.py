"""Does the `auto` image tower learn at least as well as the old fixed default?

An image-only classifier of the 16 shape concepts (`plait.datasets.shapes`: 32x32 RGB,
640 training rows, 160 validation, 160 test), trained the same way with `image_cnn` at
`dim`/`layers` `auto` (32 pixels: 3 blocks, dim 128, max pooling) and at the two
defaults it replaced (4 blocks, dim 192, mean pooling; dim 128, 2 blocks, mean pooling):
AdamW, lr 2e-3, batch 32, no augmentation, `--epochs` epochs, best epoch on validation;
test accuracy and training time per seed.

    python bench/encoders_quality.py --seeds 0,1 --epochs 10
    python bench/encoders_quality.py --seeds 1 --towers 0 --append   # one more row

Writes after every row (`--append` keeps the rows already there).

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
    "old auto (4 blocks, dim 192, mean)": {
        "type": "image_cnn", "dim": 192, "layers": 4, "pooling": "mean"
    },
    "dim 128, 2 blocks, mean": {"type": "image_cnn", "dim": 128, "layers": 2, "pooling": "mean"},
}  # fmt: skip
"""`auto` is today's default (32 px: 3 blocks, dim 128, max-pooled 4x4 map); the others are
the defaults it replaced, spelled out (they pooled with the mean then)."""


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
    parser.add_argument(
        "--towers", default=None, help="only these rows of TOWERS, by number (0: auto)"
    )
    parser.add_argument(
        "--append", action="store_true", help="keep the rows --out holds (another tower/seed)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    rows: list[dict[str, Any]] = []
    if args.append and out.exists():
        rows = json.loads(out.read_text())["rows"]
    picked = [int(i) for i in args.towers.split(",")] if args.towers else range(len(TOWERS))
    towers = {label: enc for i, (label, enc) in enumerate(TOWERS.items()) if i in picked}
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_shapes(Path(tmp) / "shapes")
        for seed in [int(s) for s in args.seeds.split(",")]:
            for label, encoder in towers.items():
                raw = config(
                    data,
                    Path(tmp) / "runs",
                    f"s{seed}-{encoder.get('dim', 'auto')}-{encoder.get('layers', 'auto')}",
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
                    "pooling": cfg.pooling,
                    "test_accuracy": round(float(result.metrics["accuracy"]), 4),
                    "train_seconds": result.metrics["train_seconds"],
                    "params": result.metrics["params"],
                }
                rows = [r for r in rows if (r["tower"], r["seed"]) != (label, seed)] + [row]
                print(row, flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=2))
    print(f"\n{'tower':36} {'test accuracy (mean)':>22} {'train s (mean)':>16}")
    for label in TOWERS:
        mine = [r for r in rows if r["tower"] == label]
        if not mine:
            continue
        accuracy = statistics.mean(r["test_accuracy"] for r in mine)
        seconds = statistics.mean(r["train_seconds"] for r in mine)
        print(f"{label:36} {accuracy:>22.3f} {seconds:>16.1f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
