"""AV-MNIST accuracy and robustness: every recipe in configs/avmnist-*.yaml over seeds.

    plait data avmnist --mnist ../shared/data/mnist --fsdd ../shared/data/fsdd --out avmnist
    python bench/avmnist.py --data avmnist                      # full protocol
    python bench/avmnist.py --data avmnist-s5k --epochs 3 --tag subset5k   # quicker
    python bench/avmnist.py --data avmnist --jobs 8 --threads 2   # runs side by side (GPU box)

For each recipe and seed: train with `plait.api.train_run` (recipe settings, data paths
swapped for `--data`), then test accuracy, parameter count and training seconds per
epoch. For the first seed of every fusion recipe, also the robustness table: test
accuracy with the image or the audio missing and with noise on each (`--robustness`),
and the same for a copy trained with modality dropout (`--dropout 0.3`). With `--explain`,
each fusion run's modality attribution on the test rows (each modality's share of the mean
|Shapley contribution|, `plait.evaluation.attribution`).

`--jobs N` trains N (recipe, seed) runs at once in spawned worker processes (each with
`--threads` torch threads and its own CUDA context when a GPU is there); seconds per epoch
then include the contention between runs. The JSON is rewritten after every finished run,
so an interrupted sweep keeps what it had.

Prints markdown tables and writes bench/results/avmnist-<tag>.json (or `--out`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
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
        f"training.num_workers={args.workers}",
    ]
    if args.epochs:
        overrides.append(f"training.epochs={args.epochs}")
    return PlaitConfig.from_yaml(path, overrides)


def run_one(config, label: str) -> dict[str, Any]:
    from plait.api import train_run as fit

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
    import torch

    from plait.evaluation import Condition, evaluate_robustness

    if torch.cuda.is_available():
        predictor.model.to("cuda")

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


def run_task(name: str, seed: int, robust: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One recipe and seed (plus its modality-dropout copy when `robust`); plain data back."""
    path = REPO / "configs" / f"avmnist-{name}.yaml"
    data = args.data.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        config = recipe_config(path, data, Path(tmp) / f"s{seed}", seed, args)
        run = run_one(config, f"{name}/seed{seed}")
        table: dict[str, dict[str, float]] = {}
        if robust:
            table[name] = robustness(run["predictor"], data, args.noise)
            if args.dropout > 0:
                dropped = config.model_copy(
                    update={
                        "name": f"{config.name}-mdrop",
                        "output_dir": str(Path(tmp) / f"s{seed}-mdrop"),
                        "fusion": config.fusion.model_copy(
                            update={"modality_dropout": args.dropout}
                        ),
                    }
                )
                variant = run_one(dropped, f"{name}+dropout/seed{seed}")
                table[f"{name} + modality dropout {args.dropout:g}"] = robustness(
                    variant["predictor"], data, args.noise
                )
        if args.explain and len(config.modalities) > 1:
            run["attribution"] = attribution_shares(run["predictor"], data)
        run.pop("predictor")
    return {"run": {**run, "recipe": name, "seed": seed}, "robustness": table}


def attribution_shares(predictor, data: Path) -> dict[str, float]:
    """Each modality's share of the mean |Shapley contribution| on the test rows."""
    from plait.evaluation import modality_attribution

    summary = modality_attribution(predictor, data / "test.csv", batch_size=256).summary
    return {m: round(float(v), 4) for m, v in summary["share"].items()}


def attribution_markdown(runs: list[dict[str, Any]]) -> str:
    explained = [r for r in runs if "attribution" in r]
    if not explained:
        return ""
    modalities = list(explained[0]["attribution"])
    lines = [
        "| recipe | seed | accuracy | " + " | ".join(f"{m} share" for m in modalities) + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(modalities),
    ]
    for r in explained:
        shares = " | ".join(f"{r['attribution'][m]:.3f}" for m in modalities)
        lines.append(f"| {r['recipe']} | {r['seed']} | {r['accuracy']:.4f} | {shares} |")
    return "\n".join(lines)


def _is_fused(name: str) -> bool:
    from plait.config import PlaitConfig

    recipe = PlaitConfig.from_yaml(REPO / "configs" / f"avmnist-{name}.yaml")
    return len(recipe.modalities) > 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "avmnist")
    parser.add_argument("--recipes", default="", help="comma-separated names (image,concat,...)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=0, help="override the recipes' epochs")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="data-loader workers per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    parser.add_argument("--robustness", action="store_true")
    parser.add_argument("--noise", type=float, default=1.0, help="robustness noise level")
    parser.add_argument("--dropout", type=float, default=0.3, help="modality dropout variant")
    parser.add_argument(
        "--explain", action="store_true", help="modality attribution shares of fusion runs"
    )
    parser.add_argument("--tag", default="full")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/)")
    args = parser.parse_args()

    names = [n for n in args.recipes.split(",") if n] or sorted(
        p.stem.removeprefix("avmnist-") for p in (REPO / "configs").glob("avmnist-*.yaml")
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    # seed-major: a sweep cut short still has every recipe at the first seeds
    tasks = [
        (name, seed, args.robustness and _is_fused(name) and seed == seeds[0])
        for seed in seeds
        for name in names
    ]
    out = args.out or RESULTS / f"avmnist-{args.tag}.json"
    meta_path = args.data / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    runs: list[dict[str, Any]] = []
    robust: dict[str, dict[str, float]] = {}

    def record(result: dict[str, Any]) -> None:
        run = result["run"]
        runs.append(run)
        robust.update(result["robustness"])
        print(
            f"{run['recipe']} seed {run['seed']}: accuracy {run['accuracy']:.4f} "
            f"({run['seconds_per_epoch']:.1f} s/epoch)",
            flush=True,
        )
        write_report(out, args, seeds, meta, runs, robust)

    if args.jobs <= 1:
        for task in tasks:
            record(run_task(*task, args))
    else:
        # spawn: CUDA cannot be used in forked children
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            # the long tasks (a fusion plus its modality-dropout copy) first
            ordered = sorted(tasks, key=lambda task: not task[2])
            futures = {pool.submit(run_task, *task, args): task for task in ordered}
            for future in as_completed(futures):
                try:
                    record(future.result())
                except Exception as exc:  # one failed run must not lose the others
                    print(f"{futures[future][0]} seed {futures[future][1]} failed: {exc!r}")

    runs.sort(key=lambda r: (names.index(r["recipe"]), r["seed"]))
    print()
    print(markdown(summarise(runs)))
    if args.explain:
        print()
        print(attribution_markdown(runs))
    if robust:
        print()
        print(robustness_markdown(dict(sorted(robust.items()))))


def write_report(
    out: Path,
    args: argparse.Namespace,
    seeds: list[int],
    meta: dict[str, Any],
    runs: list[dict[str, Any]],
    robust: dict[str, dict[str, float]],
) -> None:
    from plait.utils.io import atomic_write_json

    report = {
        "tag": args.tag,
        "data": str(args.data),
        "data_meta": meta,
        "seeds": seeds,
        "epochs_override": args.epochs,
        "threads": args.threads,
        "jobs": args.jobs,
        "device": _device(),
        "summary": summarise(runs),
        "runs": runs,
        "robustness": robust,
    }
    atomic_write_json(out, report)


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
