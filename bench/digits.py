"""Real-data alignment: spoken digits (FSDD), handwritten digits (MNIST) and digit words.

    plait data digits --mnist ../shared/data/mnist --fsdd ../shared/data/fsdd --out digits
    python bench/digits.py --data digits                  # every configs/digits-*.yaml
    python bench/digits.py --data digits --recipes text-audio --seeds 0,1,2

For each recipe and seed: train with `plait.api.train_run` (recipe settings, data paths
swapped for `--data`), then on the held-out test recordings (FSDD index 0-4, MNIST test
images): recall@1/5 in both directions with label relevance (a hit is any row of the same
digit) and, when text is one of the pair, zero-shot digit accuracy through the recipe's
prompt templates. Chance: R@1 0.10, zero-shot 0.10.

Prints a markdown table and writes bench/results/digits.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"


def run_recipe(recipe: str, data: Path, out: Path, seed: int, epochs: int | None) -> dict:
    from plait.api import train_run as fit
    from plait.config import PlaitConfig

    overrides = [
        f"data.train={data / 'train.csv'}",
        f"data.valid={data / 'valid.csv'}",
        f"data.test={data / 'test.csv'}",
        f"output_dir={out}",
        f"name={recipe}-seed{seed}",
        f"training.seed={seed}",
        "training.progress=false",
        "training.tensorboard=false",
    ]
    if epochs:
        overrides.append(f"training.epochs={epochs}")
    config = PlaitConfig.from_yaml(REPO / "configs" / f"digits-{recipe}.yaml", overrides)
    start = time.perf_counter()
    run = fit(config)
    metrics = run.metrics
    row: dict[str, Any] = {
        "recipe": recipe,
        "seed": seed,
        "epochs": metrics["epochs"],
        "train_seconds": round(time.perf_counter() - start, 1),
        "pairs": metrics["pairs"],
    }
    for direction, values in metrics["retrieval"].items():
        row[f"{direction} R@1"] = values["R@1"]
        row[f"{direction} R@5"] = values["R@5"]
    for modality, values in metrics.get("zeroshot", {}).items():
        row[f"zero-shot {modality}"] = values["accuracy"]
    return row


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds for every numeric column, per recipe."""
    table = []
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == recipe]
        summary: dict[str, Any] = {"recipe": recipe, "seeds": len(mine)}
        for key in mine[0]:
            if key in ("recipe", "seed") or not isinstance(mine[0][key], int | float):
                continue
            values = [r[key] for r in mine]
            mean = statistics.fmean(values)
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[key] = (round(mean, 3), round(spread, 3))
        table.append(summary)
    return table


def markdown(table: list[dict]) -> str:
    keys = [k for k in dict.fromkeys(k for row in table for k in row) if k not in ("recipe",)]
    lines = ["| recipe | " + " | ".join(keys) + " |", "| --- |" + " ---: |" * len(keys)]
    for row in table:
        cells = []
        for key in keys:
            value = row.get(key, "")
            if isinstance(value, tuple):
                mean, spread = value
                cells.append(f"{mean:.3f} ± {spread:.3f}" if spread else f"{mean:g}")
            else:
                cells.append(str(value))
        lines.append(f"| {row['recipe']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "digits")
    parser.add_argument("--recipes", default="text-audio,audio-image,text-image")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipes'")
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = parser.parse_args()
    data = args.data.resolve()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                row = run_recipe(recipe.strip(), data, Path(tmp), seed, args.epochs)
                print(json.dumps(row), flush=True)
                rows.append(row)
    table = summarise(rows)
    print(markdown(table))
    RESULTS.mkdir(exist_ok=True)
    name = f"digits{'-' + args.tag if args.tag else ''}.json"
    (RESULTS / name).write_text(json.dumps({"runs": rows, "summary": table}, indent=2) + "\n")
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
