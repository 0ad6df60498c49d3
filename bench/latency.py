"""Single-row prediction latency of a saved model: `plait.load` once, then one row per call.

    python bench/latency.py                  # demo data (generated), concat of text+image+audio
    python bench/latency.py --calls 500 --threads 1

A loaded model must answer one row in milliseconds: no trainer is built for inference.
Trains the demo's concat fusion for one epoch (the weights do not change the latency),
saves it, loads it back with `plait.load`, then times `predict` on a one-row DataFrame
(file paths in, as a user calls it: decode PNG + WAV, log-mel, tokenise, forward) and on
the same row already decoded into a prepared dataset (model and collate only). Also the
per-row cost in a 64-row batch.

Prints a table and writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from speed import demo_config

from plait.threads import configure_threads

RESULTS = Path(__file__).parent / "results"


def timings(call, calls: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        call()
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = Plait's)")
    args = parser.parse_args()

    import plait
    from plait.api import train_run as fit
    from plait.data import prepare_inference, read_table

    threads = configure_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = demo_config(root, rows=400)  # 100 test rows
        config = config.model_copy(
            update={"evaluation": config.evaluation.model_copy(update={"report": False})}
        )
        model_dir = fit(config).run_dir / "model"

        start = time.perf_counter()
        predictor = plait.load(model_dir)
        load_ms = (time.perf_counter() - start) * 1000
        configure_threads(threads)  # loading must not have changed them

        table = read_table(config.data.test)
        frame = table.frame.copy()
        columns = [m.column for m in config.modalities.values()]
        frame = frame.dropna(subset=columns).reset_index(drop=True)  # every modality present
        for modality in config.modalities.values():  # absolute paths: the row stands alone
            if modality.kind in ("image", "audio"):
                frame[modality.column] = [str(table.base_dir / v) for v in frame[modality.column]]
        one_row = frame.iloc[:1]
        batch = frame.iloc[:64]
        prepared, _ = prepare_inference(
            one_row, predictor.config, predictor.processors, predictor.labels, progress=False
        )

        rows: dict[str, Any] = {
            "one row from files (DataFrame)": summary(
                timings(lambda: predictor.predict(one_row), args.calls)
            ),
            "one row, prepared dataset": summary(
                timings(lambda: predictor.predict(prepared), args.calls)
            ),
        }
        per_batch = timings(lambda: predictor.predict(batch), max(10, args.calls // 10))
        rows[f"{len(batch)}-row batch from files, per row"] = {
            k: round(v / len(batch), 3) for k, v in summary(per_batch).items()
        }

    report = {
        "model": "demo concat fusion (text CNN, image CNN, audio CNN)",
        "params": sum(p.numel() for p in predictor.model.parameters()),
        "load_ms": round(load_ms, 1),
        "threads": threads,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "calls": args.calls,
        "latency": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps(report, indent=2))
    print(f"model loaded in {report['load_ms']} ms ({report['params']:,} parameters)")
    print("| call | p50 ms | p95 ms | mean ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, row in rows.items():
        print(f"| {name} | {row['p50_ms']} | {row['p95_ms']} | {row['mean_ms']} |")


if __name__ == "__main__":
    main()
