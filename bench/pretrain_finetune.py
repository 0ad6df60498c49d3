"""Pretrain, then fine-tune: does an aligned image tower help a classifier with few labels?

On `plait.datasets.shapes` (32 x 32 pictures of 16 colour-shape concepts with captions):

1. pretrain image <-> caption models on the training rows WITHOUT their labels, with the
   objectives `clip`, `clip+itm+mlm` and `clip+itm+mlm+mrm` (same towers, same epochs);
2. fine-tune an image-only concept classifier on `--labelled` training rows (the first
   `labelled // 16` of each concept),
   from scratch and with `init_from` each pretrained model; validation picks the best
   epoch, the test split is scored once.

    python bench/pretrain_finetune.py --seed 0 --out bench/results/pretrain-finetune-seed0.json
    python bench/pretrain_finetune.py --quick --out /tmp/pf.json   # keeps the script working

About 5 minutes a seed on 2 shared CPU cores. One thread (`training.threads: 1`). The
data are the same for every seed (`generate_shapes(seed=0)`); `--seed` is the training
seed. Prints a table and writes the JSON (`--out`) after every run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS = Path(__file__).parent / "results"
VARIANTS: dict[str, list[str]] = {
    "clip": ["clip"],
    "clip+itm+mlm": ["clip", "itm", "mlm"],
    "clip+itm+mlm+mrm": ["clip", "itm", "mlm", "mrm"],
}
#: `small`: 32-wide towers; `demo`: the towers of `plait demo retrieval` (its image tower
#: retrieves well on this data: R@1 0.888 in bench/first_try.py)
TOWERS: dict[str, dict[str, Any]] = {
    "small": {"image": {"type": "image_cnn", "dim": 32, "layers": 2}, "text": 32, "batch": 32},
    "demo": {
        "image": {"type": "image_cnn", "dim": 64, "layers": 3, "pooling": "max"},
        "text": 64,
        "batch": 64,
    },
}


def image(towers: str) -> dict[str, Any]:
    return {
        "kind": "image",
        "column": "image",
        "size": 32,
        "augment": False,  # captions name positions: a flip would falsify them
        "encoder": TOWERS[towers]["image"],
    }


def training(epochs: int, seed: int, batch_size: int) -> dict[str, Any]:
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": 3e-3,
        "seed": seed,
        "threads": 1,
        "accelerator": "cpu",
        "progress": False,
        "tensorboard": False,
    }


def pretrain_config(data: Path, out: Path, name: str, objectives: list[str], args) -> dict:
    return {
        "name": name,
        "output_dir": str(out),
        # the label only scores retrieval (any row of the concept is a hit); training and
        # checkpoint choice (valid/loss) never read it
        "data": {
            "train": str(data / "train.csv"),
            "valid": str(data / "valid.csv"),
            "test": str(data / "test.csv"),
            "id": "id",
            "label": "concept",
        },
        "modalities": {
            "caption": {
                "kind": "text",
                "column": "caption",
                "max_length": 24,
                "encoder": {"type": "text_cnn", "dim": TOWERS[args.towers]["text"]},
            },
            "image": image(args.towers),
        },
        "alignment": {
            "dim": TOWERS[args.towers]["text"],
            "objectives": [{"name": o} for o in objectives],
            "relevance": "label",
        },
        "training": training(args.pretrain_epochs, args.seed, TOWERS[args.towers]["batch"]),
        "evaluation": {"report": False},
    }


def finetune_config(data: Path, out: Path, name: str, init_from: Path | None, args) -> dict:
    raw = {
        "name": name,
        "output_dir": str(out),
        "data": {
            "train": str(data / "labelled.csv"),
            "valid": str(data / "valid.csv"),
            "test": str(data / "test.csv"),
            "id": "id",
            "label": "concept",
        },
        "modalities": {"image": image(args.towers)},
        "training": {**training(args.finetune_epochs, args.seed, 16), "monitor": "valid/accuracy"},
        "evaluation": {"report": False},
    }
    if init_from is not None:
        raw["init_from"] = str(init_from)
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=640, help="pretraining rows")
    parser.add_argument("--labelled", type=int, default=64, help="labelled rows to fine-tune")
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--towers", choices=sorted(TOWERS), default="demo")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to test the script")
    parser.add_argument("--out", type=Path, default=RESULTS / "pretrain-finetune.json")
    args = parser.parse_args()
    if args.quick:
        args.train, args.labelled, args.pretrain_epochs, args.finetune_epochs = 64, 32, 1, 1

    from plait.api import train_run
    from plait.config import PlaitConfig
    from plait.datasets.shapes import generate_shapes

    work = Path(tempfile.mkdtemp(prefix="plait-pretrain-"))
    data = work / "shapes"
    generate_shapes(data, n_train=args.train, n_valid=160, n_test=160, seed=0)
    train = pd.read_csv(data / "train.csv")  # the first rows of each concept, equally many
    per_concept = max(1, args.labelled // 16)
    train.groupby("concept").head(per_concept).to_csv(data / "labelled.csv", index=False)
    rows: list[dict[str, Any]] = []

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"settings": vars(args) | {"out": str(args.out)}, "rows": rows}, indent=2)
        )
        print(row, flush=True)

    def finetune(name: str, init_from: Path | None, pretrain: dict[str, Any]) -> None:
        start = time.perf_counter()
        raw = finetune_config(data, work / "runs", f"finetune-{name}", init_from, args)
        run = train_run(PlaitConfig.from_dict(raw))
        record(
            {
                "start": name,
                "test_accuracy": round(run.metrics["accuracy"], 4),
                "valid_accuracy": round(run.metrics["valid"]["accuracy"], 4),
                "finetune_seconds": round(time.perf_counter() - start, 1),
                **pretrain,
            }
        )

    finetune("scratch", None, {})
    for name, objectives in VARIANTS.items():
        start = time.perf_counter()
        raw = pretrain_config(data, work / "runs", f"pretrain-{name}", objectives, args)
        run = train_run(PlaitConfig.from_dict(raw))
        retrieval = run.metrics.get("retrieval", {})
        r1 = [retrieval[d]["R@1"] for d in retrieval]
        pretrain = {
            "pretrain_R@1": round(sum(r1) / len(r1), 4) if r1 else None,
            "pretrain_seconds": round(time.perf_counter() - start, 1),
        }
        finetune(name, run.model_dir, pretrain)
    shutil.rmtree(work, ignore_errors=True)  # the runs and data (the JSON keeps the numbers)

    print(
        "\n| start | test accuracy | valid accuracy | pretrain test R@1 (label relevance, mean of 2 directions) |"
    )
    print("| --- | --- | --- | --- |")
    for row in rows:
        r1 = row.get("pretrain_R@1")
        print(
            f"| {row['start']} | {row['test_accuracy']:.3f} | {row['valid_accuracy']:.3f} | "
            f"{'-' if r1 is None else f'{r1:.3f}'} |"
        )


if __name__ == "__main__":
    main()
