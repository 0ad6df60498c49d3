"""Visual question answering on the built-in reasoning scenes: the four answer heads.

On `plait.datasets.reasoning` (Sort-of-CLEVR style: six coloured circles / squares a
picture, three non-relational question types and three relational ones), each head of
`plait.heads.vqa.VQA_HEADS` answers from the same scratch CNN (64x64 picture -> a 4x4x64
map) and the same GRU question encoder:

    fusion       the CNN+MLP baseline (map pooled to 4x4, flattened, concat with the question)
    film         FiLM-ed residual conv blocks (Perez et al. 2018)
    relation     relation network over the 16 map cells, g's first layer decomposed
    transformer  cell self-attention, then CLS + question words cross-attending to the cells
    generate     `vqa.answer: generate`: the caption decoder writes the answer (scored
                 as the likeliest known answer)

Every head trains with the same budget (`--minutes`, a time limit, and `--epochs`), one
seed each (`--seeds`), then `--best-seeds` more seeds for the head with the best
validation accuracy. Test accuracy is reported overall, non-relational and relational.

    python bench/vqa.py --out bench/results/vqa.json
    python bench/vqa.py --heads relation --seeds 0,1,2 --out bench/results/vqa-relation.json
    python bench/vqa.py --quick --out /tmp/vqa.json   # keeps the script working

One thread a run (`training.threads`, `--threads`); the data are always `seed=0`. Prints a
table and writes the JSON (`--out`) after every row. Each row records the process CPU
seconds it used (`resource.getrusage`, training and the test evaluation) beside the
wall-clock minutes: on a shared machine the wall clock of a time limit is not equal work,
CPU time is (one thread: CPU minutes are the budget; "30 minutes on 2 cores" is 60).

    # 36 questions a scene, batches of 8 scenes x 8 questions (one CNN pass a scene)
    python bench/vqa.py --questions 36 --group 8 --epochs 20 --minutes 0 --out /tmp/vqa.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
HEADS: dict[str, dict[str, Any]] = {
    "fusion": {"fusion": "concat", "dim": 256, "hidden": 256, "pool_side": 4, "dropout": 0.1},
    "film": {"channels": 64, "blocks": 3, "hidden": 256, "dropout": 0.1},
    "relation": {"width": 128, "g_layers": 2, "hidden": 256, "dropout": 0.1},
    "transformer": {"dim": 64, "heads": 4, "grid_layers": 1, "layers": 2, "dropout": 0.1},
    # not a head: `vqa.answer: generate`, the caption decoder writing the answer
    "generate": {"dim": 64, "layers": 2, "heads": 4, "dropout": 0.1},
}
QUICK_HEADS: dict[str, dict[str, Any]] = {
    "fusion": {"dim": 16, "hidden": 16, "pool_side": 2},
    "film": {"channels": 8, "blocks": 1, "hidden": 16},
    "relation": {"width": 16, "hidden": 16},
    "transformer": {"dim": 16, "heads": 2, "layers": 1},
    "generate": {"dim": 16, "heads": 2, "layers": 1},
}


def vqa_config(
    data: Path, out: Path, head: str, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    """configs/vqa-reasoning.yaml with the head swapped and the bench's budget."""
    options = (QUICK_HEADS if args.quick else HEADS)[head]
    return {
        "name": f"vqa-{head}-seed{seed}",
        "output_dir": str(out),
        "data": {
            "train": str(data / "train.csv"),
            "valid": str(data / "valid.csv"),
            "test": str(data / "test.csv"),
            "id": "id",
            "label": "answer",
            # --quick: a dozen scenes may miss an answer in training
            "on_error": "skip" if args.quick else "raise",
        },
        "modalities": {
            "image": {
                "kind": "image",
                "column": "image",
                "size": args.size,
                "augment": False,  # left / right and top / bottom: a flip would lie
                "encoder": {
                    "type": "image_cnn",
                    "dim": args.dim,
                    "layers": args.layers,
                    "dropout": 0.0,
                },  # fmt: skip
            },
            "question": {
                "kind": "text",
                "column": "question",
                "max_length": 16,
                "encoder": {"type": f"text_{args.text}", "dim": args.dim, "dropout": 0.0}
                | ({"layers": 1} if args.text == "gru" else {}),
            },
        },
        "vqa": {
            "head": "fusion" if head == "generate" else head,
            "answer": "generate" if head == "generate" else "classify",
            "head_options": options,
            "type_columns": ["question_type", "relation"],
            "group_questions": args.group,
        },
        "training": {
            "epochs": args.epochs,
            "time_limit": f"{args.minutes}m" if args.minutes else None,
            "batch_size": args.batch,
            "lr": args.lr,
            "seed": seed,
            "threads": args.threads,
            "precision": args.precision,
            "accelerator": "cpu",
            "monitor": "valid/accuracy",
            "progress": False,
            "tensorboard": False,
        },
        "evaluation": {"report": False},
    }


def run_row(data: Path, work: Path, head: str, seed: int, args: argparse.Namespace) -> dict:
    from plait.api import train_run
    from plait.config import PlaitConfig

    start = time.perf_counter()
    cpu_start = cpu_seconds()
    run = train_run(PlaitConfig.from_dict(vqa_config(data, work, head, seed, args)))
    cpu = cpu_seconds() - cpu_start
    metrics = run.metrics
    return {
        "head": head,
        "seed": seed,
        "accuracy": round(metrics["accuracy"], 4),
        "non_relational": round(metrics["accuracy_non_relational"], 4),
        "relational": round(metrics["accuracy_relational"], 4),
        "per_type": {
            kind: round(row["accuracy"], 4)
            for kind, row in metrics["per_type"]["question_type"].items()
        },
        "valid_accuracy": round(metrics["valid"]["accuracy"], 4),
        "epochs_run": run.epochs_run,
        "train_minutes": round(run.train_seconds / 60, 2),
        "row_minutes": round((time.perf_counter() - start) / 60, 2),
        "cpu_minutes": round(cpu / 60, 2),
    }


def cpu_seconds() -> float:
    """CPU seconds this process (all its threads) and its finished children have used."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_average_at_start": load}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=3000, help="training scenes")
    parser.add_argument("--valid", type=int, default=150)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--dim", type=int, default=64, help="CNN channels and GRU width")
    parser.add_argument("--questions", type=int, default=6, help="questions a scene")
    parser.add_argument("--group", type=int, default=1,
                        help="vqa.group_questions: questions of one scene together in a batch")  # fmt: skip
    parser.add_argument("--size", type=int, default=64, help="picture side the CNN reads")
    parser.add_argument("--layers", type=int, default=4, help="CNN blocks (each halves the side)")
    parser.add_argument("--text", choices=("gru", "cnn"), default="gru", help="question encoder")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--minutes", type=float, default=6.0, help="time limit a run (0: none)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads a run")
    parser.add_argument("--precision", default="32", help="training.precision (bf16-mixed)")
    parser.add_argument("--heads", default="fusion,film,relation,transformer",
                        help=f"comma-separated, of {','.join(HEADS)}")  # fmt: skip
    parser.add_argument("--seeds", default="0", help="comma-separated seeds for every head")
    parser.add_argument("--best-seeds", type=int, default=0,
                        help="then this many more seeds for the best head (valid accuracy)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to test the script")
    parser.add_argument("--out", type=Path, default=RESULTS / "vqa.json")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the data and runs (metrics.csv per epoch) in this folder")  # fmt: skip
    args = parser.parse_args()
    heads = args.heads.split(",")
    unknown = sorted(set(heads) - set(HEADS))
    if unknown:
        parser.error(f"--heads: unknown {unknown}; choose from {','.join(HEADS)}")
    if args.quick:
        args.train, args.valid, args.test, args.dim, args.epochs = 12, 4, 4, 8, 1

    from plait.datasets.reasoning import generate_reasoning

    work = args.keep or Path(tempfile.mkdtemp(prefix="plait-vqabench-"))
    data = work / "reasoning"
    generate_reasoning(data, n_train=args.train, n_valid=args.valid, n_test=args.test, seed=0,
                       questions=args.questions)  # fmt: skip
    settings = vars(args) | {"out": str(args.out), "keep": str(args.keep), "machine": machine()}
    rows: list[dict[str, Any]] = []

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))
        print(json.dumps(row), flush=True)

    seeds = [int(s) for s in args.seeds.split(",")]
    for head in heads:
        for seed in seeds:
            record(run_row(data, work / "runs", head, seed, args))
    if args.best_seeds:
        best = max(rows, key=lambda r: r["valid_accuracy"])["head"]
        for seed in range(max(seeds) + 1, max(seeds) + 1 + args.best_seeds):
            record(run_row(data, work / "runs", best, seed, args))
    if args.keep is None:  # the runs and data (the JSON keeps the numbers)
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    kinds = list(rows[0]["per_type"]) if rows else []
    print("\n| head | seed | overall | non-relational | relational | "
          + " | ".join(kinds) + " | epochs | train min | CPU min |")  # fmt: skip
    print("| --- " * (9 + len(kinds)) + "|")
    for row in rows:
        types = " | ".join(f"{row['per_type'].get(k, float('nan')):.3f}" for k in kinds)
        print(f"| {row['head']} | {row['seed']} | {row['accuracy']:.3f} | "
              f"{row['non_relational']:.3f} | {row['relational']:.3f} | {types} | "
              f"{row['epochs_run']} | {row['train_minutes']} | {row['cpu_minutes']} |")  # fmt: skip


if __name__ == "__main__":
    main()
