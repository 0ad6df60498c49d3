"""Vector index: build time, query latency, throughput and recall of Plait's FAISS index,
and Plait's search overhead over calling FAISS directly.

    python bench/index.py                                   # 1,000,000 x 384, exact + hnsw
    python bench/index.py --kinds exact,hnsw,ivfpq          # IVF-PQ too
    python bench/index.py --n 100000 --queries 500          # a quick run

Data: embedding-like vectors, not uniform noise: a mixture of `--clusters` Gaussians in a
64-d latent space, projected to `--dim` by a fixed random matrix, plus isotropic noise,
L2-normalised. The queries are `--queries` held-out draws from the same distribution.

Per kind: build seconds (`EmbeddingIndex.build`, validation and normalisation included);
single-query p50 latency and batch throughput (all queries in one call), each for
`EmbeddingIndex.search(q, 10)` and for the same FAISS index's own `.search` on the same
already-normalised queries, interleaved in one run; recall@10 of hnsw/ivfpq against exact.
HNSW is measured again at each `--ef-sweep` ef_search (same graph, no rebuild).
FAISS uses os.cpu_count() OpenMP threads. Prints a markdown table and writes
bench/results/index.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import timeit
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from plait.retrieval.index import EmbeddingIndex

RESULTS = Path(__file__).parent / "results"
LATENT = 64  # intrinsic dimension of the generated embeddings


def make_vectors(count: int, dim: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors [count, dim] from a Gaussian mixture in a 64-d latent space, and their
    cluster labels [count]."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((LATENT, dim), dtype=np.float32) / np.float32(np.sqrt(LATENT))
    centres = 2.0 * rng.standard_normal((clusters, LATENT), dtype=np.float32)  # [C, 64]
    labels = rng.integers(0, clusters, count)  # [count]
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 100_000):
        chunk = labels[start : start + 100_000]
        noise = rng.standard_normal((len(chunk), LATENT), dtype=np.float32)
        latent = centres[chunk] + noise  # [c, 64]
        x = latent @ basis + 0.2 * rng.standard_normal((len(chunk), dim), dtype=np.float32)
        out[start : start + len(chunk)] = x / np.linalg.norm(x, axis=1, keepdims=True)  # [c, D]
    return out, labels


def single_latency(index: EmbeddingIndex, queries: np.ndarray, count: int) -> dict[str, float]:
    """p50 ms of one-query calls for Plait and raw FAISS on the same queries. They take turns
    by blocks of 50 queries in A B B A order, so both see the same machine load and neither
    runs a query the other has just pulled into cache (at 1M items)."""
    raw = index.faiss_index
    singles = [queries[i : i + 1] for i in range(min(count, len(queries)))]  # [1, D] each
    calls = {"plait": lambda q: index.search(q, 10), "raw": lambda q: raw.search(q, 10)}
    times: dict[str, list[float]] = {"plait": [], "raw": []}
    for block in range(0, len(singles), 50):
        for name in ("plait", "raw", "raw", "plait"):
            for q in singles[block : block + 50]:
                start = time.perf_counter()
                calls[name](q)
                times[name].append((time.perf_counter() - start) * 1000)
    return {
        "plait_p50_ms": statistics.median(times["plait"]),
        "raw_p50_ms": statistics.median(times["raw"]),
    }


def batch_throughput(
    index: EmbeddingIndex, queries: np.ndarray, repeats: int
) -> tuple[dict[str, float], list[list[str]]]:
    """Queries/s of one call with every query (best of `repeats` each: other processes on
    a shared machine only ever slow a call down), Plait and raw FAISS in alternating order;
    also the ids Plait found."""
    raw = index.faiss_index
    seconds: dict[str, list[float]] = {"plait": [], "raw": []}
    hits: list = []
    for repeat in range(repeats):
        for name in ("plait", "raw") if repeat % 2 == 0 else ("raw", "plait"):
            start = time.perf_counter()
            if name == "plait":
                hits = index.search(queries, 10)
            else:
                raw.search(queries, 10)
            seconds[name].append(time.perf_counter() - start)
    per_s = {f"{name}_qps": len(queries) / min(s) for name, s in seconds.items()}
    return per_s, [h.ids for h in hits]


def fixed_cost_us(dim: int, repeats: int = 5, calls: int = 5000) -> dict[str, float]:
    """Plait's own work per one-query call (checks, normalisation, id lookup), in µs: the
    same search on a 100-item exact index, where FAISS itself takes a few µs; best of
    `repeats`."""
    vectors, _ = make_vectors(100, dim, 10, seed=1)
    index = EmbeddingIndex.build(vectors, [str(i) for i in range(100)], kind="exact")
    raw, q = index.faiss_index, vectors[:1]  # [1, D]
    best = {}
    for name, call in {
        "plait": lambda: index.search(q, 10),
        "raw": lambda: raw.search(q, 10),
    }.items():
        best[name] = min(timeit.repeat(call, number=calls, repeat=repeats)) / calls * 1e6
    return {"plait_us": best["plait"], "raw_us": best["raw"], "own_us": best["plait"] - best["raw"]}


def recall_at_10(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def measure(index: EmbeddingIndex, label: str, queries: np.ndarray, args) -> tuple[dict, list]:
    """One table row's search numbers for `index` as it is set up now."""
    index.search(queries[:10], 10)  # warm-up
    single = single_latency(index, queries, args.single if label != "exact" else args.single_exact)
    batch, found = batch_throughput(index, queries, args.repeats)
    row: dict[str, Any] = {
        "kind": label,
        **single,
        **batch,
        "single_overhead": single["plait_p50_ms"] / single["raw_p50_ms"],
        "batch_overhead": batch["raw_qps"] / batch["plait_qps"],
        "search_options": dict(index.search_options),
        "build_options": index.build_options,
    }
    print(f"{label}: {row}", flush=True)
    return row, found


def bench_kind(kind: str, data: np.ndarray, ids: list[str], meta: pd.DataFrame, queries, args):
    """Build one kind, measure it, and for hnsw again at each --ef-sweep value."""
    start = time.perf_counter()
    index = EmbeddingIndex.build(
        data,
        ids,
        meta,
        kind=kind,
        hnsw_m=args.hnsw_m,
        ef_construction=args.ef_construction,
        ef_search=args.ef_search,
    )
    build_s = time.perf_counter() - start
    print(f"{kind}: built in {build_s:.1f} s ({index.build_options})", flush=True)
    row, found = measure(index, kind, queries, args)
    results = [({**row, "build_s": build_s}, found)]
    for ef in [int(v) for v in args.ef_sweep.split(",") if v] if kind == "hnsw" else []:
        index.set_search_options(ef_search=ef)
        row, found = measure(index, f"hnsw ef_search={ef}", queries, args)
        results.append(({**row, "build_s": build_s}, found))
    return results


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| kind | build s | 1-query p50 ms (Plait / FAISS) | batch q/s (Plait / FAISS) "
        "| overhead 1-query | overhead batch | recall@10 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        recall = "1 (reference)" if r["kind"] == "exact" else f"{r['recall_at_10']:.3f}"
        lines.append(
            f"| {r['kind']} | {r['build_s']:.1f} | {r['plait_p50_ms']:.3f} / {r['raw_p50_ms']:.3f} "
            f"| {r['plait_qps']:,.0f} / {r['raw_qps']:,.0f} | {r['single_overhead']:.3f} "
            f"| {r['batch_overhead']:.3f} | {recall} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="indexed vectors")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000, help="held-out query vectors")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--kinds", default="exact,hnsw", help="comma-separated: exact,hnsw,ivfpq")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--ef-search", type=int, default=64)
    parser.add_argument("--ef-sweep", default="128", help="more hnsw ef_search values to time")
    parser.add_argument(
        "--single", type=int, default=1000, help="1-query calls timed (hnsw, ivfpq)"
    )
    parser.add_argument("--single-exact", type=int, default=50, help="1-query calls timed (exact)")
    parser.add_argument("--repeats", type=int, default=5, help="batch calls timed per kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    threads = os.cpu_count() or 1
    faiss.omp_set_num_threads(threads)
    vectors, labels = make_vectors(args.n + args.queries, args.dim, args.clusters, args.seed)
    data, queries = vectors[: args.n], vectors[args.n :]  # [N, D], [Q, D]
    ids = [f"item-{i}" for i in range(args.n)]
    meta = pd.DataFrame({"cluster": labels[: args.n]})

    rows, found = [], {}
    for kind in args.kinds.split(","):
        for row, hits in bench_kind(kind, data, ids, meta, queries, args):
            rows.append(row)
            found[row["kind"]] = hits
    if "exact" in found:
        truth = found["exact"]
    else:  # ground truth from a raw flat scan
        flat = faiss.IndexFlatIP(args.dim)
        flat.add(data)
        truth = [[ids[p] for p in row] for row in flat.search(queries, 10)[1]]
    for row in rows:
        row["recall_at_10"] = recall_at_10(found[row["kind"]], truth)

    fixed = fixed_cost_us(args.dim)
    table = markdown(rows)
    print(f"\nN={args.n:,} x {args.dim}, {len(queries)} queries, k=10, FAISS threads={threads}\n")
    print(table)
    print(f"\nPlait's own work per 1-query call: {fixed['own_us']:.1f} µs ({fixed})")
    result = {
        "n": args.n,
        "dim": args.dim,
        "queries": len(queries),
        "clusters": args.clusters,
        "k": 10,
        "faiss_threads": threads,
        "cpu_count": os.cpu_count(),
        "faiss": faiss.__version__,
        "machine": platform.machine(),
        "args": vars(args),
        "rows": rows,
        "plait_fixed_cost_per_query": fixed,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "index.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
