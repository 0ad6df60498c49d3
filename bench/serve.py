"""The HTTP service on loopback: latency, throughput, micro-batching, memory, hostile input.

    python bench/serve.py                       # everything, bounded (a few minutes)
    python bench/serve.py --seconds 5 --rss-requests 2000

Serves the demo's concat fusion (text CNN + image CNN + audio CNN, saved untrained: the
weights do not change the cost) with the real CLI (`plait serve`, uvicorn, one torch
thread) in a subprocess, and drives it from this process with httpx (asyncio), each
request one multipart row (caption + PNG + WAV), the way the web page sends it.
The clients share the machine's cores with the server: on 2 cores they take a real share.

Measures:
  1. p50/p99 latency and throughput at 1, 8 and 32 concurrent clients (micro-batching on);
  2. micro-batching vs none (`--max-batch-size 1`) at 32 clients, in alternating windows
     (`--rounds` pairs, so both see the same load), beside the model-time
     gain measured in-process (one 32-row `predict` vs 32 one-row calls), since
     per-request decoding on 2 cores may cap the total;
  3. one-row predict p50 over HTTP (1 client) vs in-process `predict` of the same row;
  4. the server's RSS before and after N requests, sampled along the way;
  5. hostile uploads (truncated PNG, pixel bomb, hour-long WAV header, wrong content type,
     oversized body, bad API key) interleaved with good requests: every hostile one must
     get a 4xx, every good one a 200, and the server process must stay the same.

Prints tables and writes bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
KEY = "bench-key"


# ----------------------------------------------------------------------------- setup
def build_model(root: Path, rows: int) -> tuple[Path, Any]:
    """The demo concat model saved untrained, and one test row (absolute paths)."""
    import pandas as pd
    import torch

    from plait.config import PlaitConfig
    from plait.data import prepare_data
    from plait.datasets.demo import generate_demo
    from plait.demo import demo_config
    from plait.tasks import task_of

    generate_demo(root / "data", n_train=rows, n_test=max(8, rows // 4))
    raw = demo_config(root / "data", root, epochs=1)
    raw["training"].update(progress=False, tensorboard=False)
    torch.manual_seed(0)
    config = PlaitConfig.from_dict(raw)
    task = task_of(config)
    data = prepare_data(config, progress=False)
    model = task.build(config, data.processors, data.labels)
    folder = task.predictor_of(model, config, data.processors, data.labels).save(root / "model")
    test = pd.read_csv(root / "data" / "test.csv")
    columns = [m.column for m in config.modalities.values()]
    row = test.dropna(subset=columns).iloc[0].copy()
    for m in config.modalities.values():
        if m.kind in ("image", "audio"):
            row[m.column] = str(root / "data" / row[m.column])
    return folder, row


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`plait serve MODEL` in a subprocess (one torch thread)."""

    def __init__(self, model: Path, batch: int, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PLAIT_API_KEY": KEY}
        env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
        command = [sys.executable, "-m", "plait.cli", "serve", str(model), "--port",
                   str(self.port), "--threads", "1", "--max-batch-size", str(batch),
                   "--max-concurrency", "256"]  # fmt: skip
        self.log = log.open("w")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/v1/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
            if self.process.poll() is not None:
                break
        raise SystemExit(f"the server did not start; see {log}")

    def server_ms(self, offset: int) -> tuple[list[float], int]:
        """Server-side times (its log lines) of the predict calls logged after `offset`."""
        self.log.flush()
        text = Path(self.log.name).read_text()
        found = re.findall(r"POST /v1/predict -> 200 in ([0-9.]+) ms", text[offset:])
        return [float(v) for v in found], len(text)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# ---------------------------------------------------------------------------- requests
def good_files(row: Any) -> dict[str, Any]:
    return {
        "image": ("x.png", Path(row["image"]).read_bytes(), "image/png"),
        "audio": ("x.wav", Path(row["audio"]).read_bytes(), "audio/wav"),
    }


AUTH = {"Authorization": f"Bearer {KEY}"}


_ENCODED: dict[int, tuple[bytes, str]] = {}


def encoded(row: Any) -> tuple[bytes, str]:
    """The row's multipart body and content type, encoded once: the clients share this
    machine's cores with the server, so they must not spend them re-encoding files."""
    key = id(row)
    if key not in _ENCODED:
        request = httpx.Request(
            "POST", "http://x/", data={"caption": str(row["caption"])}, files=good_files(row)
        )
        _ENCODED[key] = (request.read(), request.headers["content-type"])
    return _ENCODED[key]


async def good(client: httpx.AsyncClient, row: Any) -> httpx.Response:
    body, content_type = encoded(row)
    return await client.post(
        "/v1/predict", content=body, headers={**AUTH, "content-type": content_type}
    )


async def load(base: str, row: Any, clients: int, seconds: float, limit: int) -> dict[str, Any]:
    """`clients` loops sending one good request after another for `seconds` (or `limit`
    requests in all): latency percentiles and throughput."""
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        await good(client, row)  # warm

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < stop and len(latencies) < limit:
                start = time.perf_counter()
                answer = await good(client, row)
                latencies.append((time.perf_counter() - start) * 1000)
                errors += answer.status_code != 200

        begin = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(clients)])
        elapsed = time.perf_counter() - begin
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "requests": len(ordered),
        "errors": errors,
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 2),
        "throughput_rps": round(len(ordered) / elapsed, 1),
    }


def mean_batch(base: str) -> float | None:
    text = httpx.get(f"{base}/metrics").text
    values = {}
    for line in text.splitlines():
        if line.startswith("plait_batch_rows_") and 'endpoint="/v1/predict"' in line:
            name = line.split("{")[0]
            values[name] = float(line.rsplit(" ", 1)[1])
    count = values.get("plait_batch_rows_count")
    return round(values["plait_batch_rows_sum"] / count, 2) if count else None


# ----------------------------------------------------------------------------- hostile
def pixel_bomb() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def hour_long_wav_header() -> bytes:
    rate, frames = 16000, 16000 * 3600
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    size = struct.pack("<I", frames * 2)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + frames * 2)
        + b"WAVE"
        + b"fmt "
        + fmt
        + b"data"
        + size
        + b"\0" * 3200
    )


async def hostile(base: str, row: Any, rounds: int) -> dict[str, Any]:
    png = Path(row["image"]).read_bytes()
    cases: dict[str, dict[str, Any]] = {
        "truncated PNG": {"files": {"image": ("t.png", png[: len(png) // 2], "image/png")}},
        "pixel bomb": {"files": {"image": ("b.png", pixel_bomb(), "image/png")}},
        "hour-long WAV header": {
            "files": {"audio": ("h.wav", hour_long_wav_header(), "audio/wav")}
        },
        "wrong content type": {"files": {"image": ("x.txt", b"hello", "text/plain")}},
        "oversized body": {"files": {"image": ("o.png", b"\0" * (21 * 2**20), "image/png")}},
        "bad API key": {"data": {"caption": "x"}, "auth": {"Authorization": "Bearer wrong"}},
    }
    statuses: dict[str, list[int]] = {name: [] for name in cases}
    good_codes: list[int] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for _ in range(rounds):
            for name, case in cases.items():
                answer = await client.post(
                    "/v1/predict",
                    data=case.get("data"),
                    files=case.get("files"),
                    headers=case.get("auth", AUTH),
                )
                statuses[name].append(answer.status_code)
                good_codes.append((await good(client, row)).status_code)
    return {
        "rounds": rounds,
        "hostile": {n: sorted(set(codes)) for n, codes in statuses.items()},
        "every_hostile_4xx": all(400 <= c < 500 for codes in statuses.values() for c in codes),
        "good_requests": len(good_codes),
        "every_good_200": all(c == 200 for c in good_codes),
    }


# ------------------------------------------------------------------------- in-process
def in_process(model: Path, row: Any, calls: int) -> dict[str, float]:
    """One-row `predict` p50 in-process, and the per-row model time of 32 one-row calls
    vs one 32-row call (the most micro-batching can save on the model side)."""
    import pandas as pd

    import plait
    from plait.threads import configure_threads

    configure_threads(1)
    predictor = plait.load(model)
    frame = pd.DataFrame([row])
    times = []
    for i in range(calls + 5):
        start = time.perf_counter()
        predictor.predict(frame)
        if i >= 5:
            times.append((time.perf_counter() - start) * 1000)
    batch = pd.concat([frame] * 32, ignore_index=True)
    one_by_one, batched = [], []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(32):
            predictor.predict(frame)
        one_by_one.append(time.perf_counter() - start)
        start = time.perf_counter()
        predictor.predict(batch)
        batched.append(time.perf_counter() - start)
    return {
        "one_row_p50_ms": round(statistics.median(times), 2),
        "32_single_calls_ms": round(statistics.median(one_by_one) * 1000, 1),
        "one_32_row_call_ms": round(statistics.median(batched) * 1000, 1),
        "model_time_gain": round(statistics.median(one_by_one) / statistics.median(batched), 2),
    }


# ------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per load level")
    parser.add_argument("--max-requests", type=int, default=3000, help="per load level")
    parser.add_argument("--rss-requests", type=int, default=10_000)
    parser.add_argument("--rss-seconds", type=float, default=240.0, help="bound on the RSS run")
    parser.add_argument("--hostile-rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=64, help="demo rows generated")
    parser.add_argument("--rounds", type=int, default=3, help="batched/unbatched window pairs")
    args = parser.parse_args()

    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), server torch threads 1",
        "python": platform.python_version(),
        "request": "one multipart row: caption + 32x32-ish PNG + WAV (demo data)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, row = build_model(root, args.rows)
        report["in_process"] = in_process(model, row, calls=100)

        server = Server(model, batch=32, log=root / "batched.log")
        unbatched = Server(model, batch=1, log=root / "unbatched.log")
        try:
            levels = []
            offset = server.server_ms(0)[1]
            for clients in (1, 8, 32):
                level = asyncio.run(
                    load(server.base, row, clients, args.seconds, args.max_requests)
                )
                inside, offset = server.server_ms(offset)
                level["server_p50_ms"] = round(statistics.median(inside), 2) if inside else None
                levels.append(level)
            report["load"] = levels
            report["http_one_row_p50_ms"] = levels[0]["p50_ms"]
            report["batching"] = compare_batching(server, unbatched, row, args)
            report["batched_mean_batch_rows"] = mean_batch(server.base)
            report["hostile"] = asyncio.run(hostile(server.base, row, args.hostile_rounds))
            pid = server.process.pid
            report["rss"] = asyncio.run(rss_run(server, row, args.rss_requests, args.rss_seconds))
            report["hostile"]["same_server_process"] = (
                server.process.poll() is None and server.process.pid == pid
            )
        finally:
            server.stop()
            unbatched.stop()

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps(report, indent=2))
    print_tables(report)


def compare_batching(
    batched: Server, unbatched: Server, row: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """Throughput at 32 clients with and without micro-batching, in alternating windows
    (A B A B ...): on a shared machine the load changes from minute to minute, so each
    pair of windows sees about the same conditions; the gain is the median of the pairs."""
    rounds = []
    for _ in range(args.rounds):
        on = asyncio.run(load(batched.base, row, 32, args.seconds, args.max_requests))
        off = asyncio.run(load(unbatched.base, row, 32, args.seconds, args.max_requests))
        rounds.append({"batched": on, "unbatched": off})
    gains = [r["batched"]["throughput_rps"] / r["unbatched"]["throughput_rps"] for r in rounds]
    return {"rounds": rounds, "gains": [round(g, 2) for g in gains],
            "median_gain": round(statistics.median(gains), 2)}  # fmt: skip


async def rss_run(server: Server, row: Any, total: int, seconds: float) -> dict[str, Any]:
    """RSS (MB) of the server before, along and after `total` good requests (8 clients),
    stopping early at `seconds`."""
    samples = [(0, round(server.rss_mb(), 1))]
    sent = 0
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
        while sent < total and time.monotonic() < stop:
            step = min(500, total - sent)
            for start in range(0, step, 8):
                await asyncio.gather(*[good(client, row) for _ in range(min(8, step - start))])
            sent += step
            samples.append((sent, round(server.rss_mb(), 1)))
    return {
        "requests": sent,
        "asked": total,
        "before_mb": samples[0][1],
        "after_mb": samples[-1][1],
        "samples": samples,
    }


def print_tables(report: dict[str, Any]) -> None:
    print(f"machine: {report['machine']}")
    print("\n| clients | requests | p50 ms | p99 ms | server p50 ms | throughput req/s | errors |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for level in report["load"]:
        print(f"| {level['clients']} | {level['requests']} | {level['p50_ms']} | {level['p99_ms']} "
              f"| {level['server_p50_ms']} | {level['throughput_rps']} | {level['errors']} |")  # fmt: skip
    print("\n| round | batched req/s | p50 ms | unbatched req/s | p50 ms | gain |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    batching = report["batching"]
    for i, (r, gain) in enumerate(zip(batching["rounds"], batching["gains"], strict=True), 1):
        on, off = r["batched"], r["unbatched"]
        print(f"| {i} | {on['throughput_rps']} | {on['p50_ms']} | {off['throughput_rps']} "
              f"| {off['p50_ms']} | {gain} |")  # fmt: skip
    ip = report["in_process"]
    print(f"\nbatching gain at 32 clients (median): {batching['median_gain']}x throughput "
          f"(mean batch {report['batched_mean_batch_rows']} rows); model-time gain in-process: "
          f"{ip['model_time_gain']}x (32 one-row calls {ip['32_single_calls_ms']} ms vs one "
          f"32-row call {ip['one_32_row_call_ms']} ms)")  # fmt: skip
    print(f"one-row predict p50: HTTP {report['http_one_row_p50_ms']} ms vs in-process "
          f"{ip['one_row_p50_ms']} ms")  # fmt: skip
    rss = report["rss"]
    print(f"RSS: {rss['before_mb']} MB before, {rss['after_mb']} MB after {rss['requests']} "
          f"requests; samples {rss['samples']}")  # fmt: skip
    h = report["hostile"]
    print(f"hostile: {h['hostile']}; every hostile 4xx: {h['every_hostile_4xx']}; "
          f"every good 200 ({h['good_requests']}): {h['every_good_200']}; same server "
          f"process: {h['same_server_process']}")  # fmt: skip


if __name__ == "__main__":
    main()
