"""AV-MNIST accuracy and robustness: every recipe in configs/avmnist-*.yaml over seeds.

    plait data avmnist --mnist ../shared/data/mnist --fsdd ../shared/data/fsdd --out avmnist
    python bench/avmnist.py --data avmnist                      # full protocol
    python bench/avmnist.py --data avmnist-s5k --epochs 3 --tag subset5k   # quicker

For each recipe and seed: train with `plait.training.fit` (recipe settings, data paths
swapped for `--data`), then test accuracy, parameter count and training seconds per
epoch. For the first seed of every fusion recipe, also the robustness table: test
accuracy with the image or the audio missing and with noise on each (`--robustness`),
and the same for a copy trained with modality dropout (`--dropout 0.3`).

Prints markdown tables and writes bench/results/avmnist-<tag>.json.
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


def recipe_config(path: Path, data: Path, out: Path, seed: int, args: argparse.Namespace):
    from plait.config import PlaitConfig

    overrides = [
        f"data.train={data / 'train.csv'}",
        f"data.valid={data / 'valid.csv'}",
        f"data.test={data / 'test.csv'}",
        f"output_dir={out}",
        f"training.seed={seed}",
        "training.progress=false",
        "training.tensorboard=false",
        f"training.threads={args.threads}",
    ]
    if args.epochs:
        overrides.append(f"training.epochs={args.epochs}")
    return PlaitConfig.from_yaml(path, overrides)


def run_one(config, label: str) -> dict[str, Any]:
    from plait.training import fit

    start = time.perf_counter()
    result = fit(config)
    metrics = result.metrics
    return {
        "run": label,
        "accuracy": metrics["accuracy"],
        "params": metrics["params"],
        "seconds_per_epoch": metrics["train_seconds"] / max(1, metrics["epochs"]),
        "wall_seconds": time.perf_counter() - start,
        "predictor": result.predictor,
    }


def robustness(predictor, data: Path, noise: float) -> dict[str, float]:
    from plait.evaluation import Condition, evaluate_robustness

    conditions = [
        Condition("clean"),
        Condition("missing:image", drop=("image",)),
        Condition("missing:audio", drop=("audio",)),
        Condition(f"noise:image@{noise:g}", noise={"image": noise}),
        Condition(f"noise:audio@{noise:g}", noise={"audio": noise}),
    ]
    frame = evaluate_robustness(predictor, data / "test.csv", conditions, batch_size=256)
    return {name: float(frame.loc[name, "accuracy"]) for name in frame.index}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_recipe: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_recipe.setdefault(run["recipe"], []).append(run)
    rows = []
    for recipe, group in by_recipe.items():
        accs = [r["accuracy"] for r in group]
        rows.append(
            {
                "recipe": recipe,
                "seeds": len(group),
                "accuracy_mean": statistics.mean(accs),
                "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "params": group[0]["params"],
                "seconds_per_epoch": statistics.mean(r["seconds_per_epoch"] for r in group),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| recipe | seeds | test accuracy | params | s / epoch |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['seeds']} | {r['accuracy_mean']:.4f} ± "
            f"{r['accuracy_std']:.4f} | {r['params']:,} | {r['seconds_per_epoch']:.1f} |"
        )
    return "\n".join(lines)


def robustness_markdown(table: dict[str, dict[str, float]]) -> str:
    if not table:
        return ""
    columns = list(next(iter(table.values())))
    lines = ["| model | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.4f}" for c in columns) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "avmnist")
    parser.add_argument("--recipes", default="", help="comma-separated names (image,concat,...)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=0, help="override the recipes' epochs")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--robustness", action="store_true")
    parser.add_argument("--noise", type=float, default=1.0, help="robustness noise level")
    parser.add_argument("--dropout", type=float, default=0.3, help="modality dropout variant")
    parser.add_argument("--tag", default="full")
    args = parser.parse_args()

    names = [n for n in args.recipes.split(",") if n] or sorted(
        p.stem.removeprefix("avmnist-") for p in (REPO / "configs").glob("avmnist-*.yaml")
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    data = args.data.resolve()
    runs: list[dict[str, Any]] = []
    robust: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = REPO / "configs" / f"avmnist-{name}.yaml"
            for seed in seeds:
                config = recipe_config(path, data, Path(tmp) / f"s{seed}", seed, args)
                run = run_one(config, f"{name}/seed{seed}")
                print(
                    f"{name} seed {seed}: accuracy {run['accuracy']:.4f} "
                    f"({run['seconds_per_epoch']:.1f} s/epoch)",
                    flush=True,
                )
                fused = len(config.modalities) > 1
                if args.robustness and fused and seed == seeds[0]:
                    robust[name] = robustness(run["predictor"], data, args.noise)
                    if args.dropout > 0:
                        dropped = config.model_copy(
                            update={
                                "name": f"{config.name}-mdrop",
                                "fusion": config.fusion.model_copy(
                                    update={"modality_dropout": args.dropout}
                                ),
                            }
                        )
                        variant = run_one(dropped, f"{name}+dropout/seed{seed}")
                        robust[f"{name} + modality dropout {args.dropout:g}"] = robustness(
                            variant["predictor"], data, args.noise
                        )
                run.pop("predictor")
                runs.append({**run, "recipe": name, "seed": seed})

    rows = summarise(runs)
    meta = json.loads((data / "meta.json").read_text()) if (data / "meta.json").is_file() else {}
    report = {
        "tag": args.tag,
        "data": str(args.data),
        "data_meta": meta,
        "seeds": seeds,
        "epochs_override": args.epochs,
        "threads": args.threads,
        "summary": rows,
        "runs": runs,
        "robustness": robust,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"avmnist-{args.tag}.json").write_text(json.dumps(report, indent=2))
    print()
    print(markdown(rows))
    if robust:
        print()
        print(robustness_markdown(robust))


if __name__ == "__main__":
    main()
