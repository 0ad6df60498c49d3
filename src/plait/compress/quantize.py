"""`plait quantize`: an ONNX export (or a model folder, exported first) to INT8.

    result = plait.quantize("runs/demo/model", method="dynamic", out="model-int8")
    result.latency   # size, latency at batch 1 and 32: PyTorch, ONNX FP32, ONNX INT8
    result.quality   # accuracy / F1 change, or embedding cosine drift and recall change

The output is an export folder like `plait export`'s (same graph file names, loadable
with `plait.load`), its graphs quantized by ONNX Runtime (`onnx_quant.py`), with the
quantization recorded in `export.json` under `quantization` and `quantize_report.json`
beside it. Static quantization calibrates on training rows (`calibration.py`).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.compress.onnx_quant import METHODS, GraphQuantization, quantize_graph
from plait.compress.rows import test_rows
from plait.errors import PlaitError
from plait.export.folder import (
    EXPORT_JSON,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    is_export_folder,
    read_export_json,
    sha256,
)
from plait.export.graphs import GraphSpec
from plait.tasks import BasePredictor
from plait.utils.io import atomic_write_folder, atomic_write_json

log = logging.getLogger("plait")

REPORT = "quantize_report.json"
CALIBRATION_ROWS = 128


@dataclass
class QuantizeResult:
    """The INT8 export folder, its latency table and what it cost."""

    folder: Path
    latency: list[Any]
    quality: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def report_path(self) -> Path:
        return self.folder / REPORT

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.settings,
            "latency": [row.as_dict() for row in self.latency],
            "quality": self.quality,
            "notes": self.notes,
        }


def quantize(
    model: str | Path,
    method: str = "dynamic",
    *,
    out: str | Path,
    calibration: str | Path | None = None,
    calibration_rows: int = CALIBRATION_ROWS,
    per_channel: bool = True,
    test: str | Path | None = None,
    threads: int | None = 1,
    repeats: int = 30,
    keep_fp32: Sequence[str] = (),
) -> QuantizeResult:
    """Quantize `model` (an export folder, or a model folder to export first) to INT8.

    Args:
        method: `dynamic` (no calibration) or `static` (calibrated on `calibration`,
            default the model's training table, `calibration_rows` sampled rows).
        per_channel: one weight scale per output channel (default; see `onnx_quant`).
        keep_fp32: node-name parts whose nodes stay FP32 (e.g. `/net/` for the heads).
        test: labelled rows to measure the cost on (default the model's test split).
        threads: ONNX Runtime and torch threads while measuring latency.
    """
    if method not in METHODS:
        raise PlaitError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    source, out = Path(model), Path(out)
    if source.resolve() == out.resolve():
        raise PlaitError(f"--out {out} is the model being quantized: choose a new folder")
    _refuse_to_replace(out)
    with tempfile.TemporaryDirectory(prefix="plait-quantize-") as scratch:
        export_dir, torch_folder = _export_of(source, Path(scratch), test)
        record = read_export_json(export_dir)
        if "captioning" in record:
            raise PlaitError(
                "quantizing a captioner is not built yet (its quality check would compare "
                "captions, not outputs); serve its FP32 export (`plait export`) instead"
            )
        if "quantization" in record:
            raise PlaitError(
                f"{export_dir} is already quantized ({record['quantization']['method']}); "
                "quantize the FP32 export or its model folder"
            )
        from plait.export.onnx_predictor import load_export

        fp32 = load_export(export_dir, threads=threads)
        calibration_data = _calibration_table(fp32, calibration) if method == "static" else None
        graphs: dict[str, GraphQuantization] = {}

        def write(staging: Path) -> None:
            _copy_export(export_dir, staging)
            for name, entry in record["graphs"].items():
                spec = GraphSpec.from_dict(entry)
                reader = None
                if calibration_data is not None:
                    from plait.compress.calibration import calibration_reader

                    reader = calibration_reader(fp32, spec, calibration_data, calibration_rows)
                log.info("quantizing %s (%s INT8)", entry["file"], method)
                graphs[name] = _quantized(
                    export_dir / entry["file"],
                    staging / entry["file"],
                    method,
                    per_channel,
                    reader,
                    keep_fp32,
                )
            quantization = {
                "method": method,
                "per_channel": per_channel,
                "keep_fp32": list(keep_fp32),
                "calibration": None
                if calibration_data is None
                else {"table": str(calibration_data), "rows": calibration_rows},
                "fp32_export": str(export_dir.resolve()) if export_dir != Path(scratch) else None,
                "fp32_sha256": {
                    e["file"]: sha256(export_dir / e["file"]) for e in record["graphs"].values()
                },
                "graphs": {name: g.to_dict() for name, g in graphs.items()},
            }
            atomic_write_json(staging / EXPORT_JSON, {**record, "quantization": quantization})
            _seal(staging)

        atomic_write_folder(out, write)
        result = _measure(fp32, export_dir, out, torch_folder, record, test, threads, repeats)
    result.settings = {
        "method": method,
        "per_channel": per_channel,
        "calibration": None if calibration_data is None else str(calibration_data),
        "calibration_rows": calibration_rows if calibration_data is not None else None,
        "threads": threads,
        "keep_fp32": list(keep_fp32),
        "quantized_ops": {name: g.quantized_ops for name, g in graphs.items()},
        **result.settings,
    }
    atomic_write_json(result.report_path, result.as_dict())
    return result


def _quantized(
    source: Path,
    target: Path,
    method: str,
    per_channel: bool,
    reader: Any,
    keep_fp32: Sequence[str],
) -> GraphQuantization:
    try:
        return quantize_graph(
            source,
            target,
            method,  # type: ignore[arg-type]
            per_channel=per_channel,
            reader=reader,
            keep_fp32=keep_fp32,
        )
    except PlaitError:
        raise
    except Exception as exc:  # noqa: BLE001  (ONNX Runtime's tool raises many kinds)
        text = " ".join(str(exc).split())[:300]
        raise PlaitError(
            f"ONNX Runtime could not quantize {source.name} ({method}): {type(exc).__name__}: "
            f"{text}; try --method dynamic, or --no-per-channel"
        ) from None


def _export_of(source: Path, scratch: Path, test: str | Path | None) -> tuple[Path, Path | None]:
    """(the FP32 export folder, the PyTorch model folder when there is one); a model
    folder is exported first, its parity checked on `test` (default: its own rows)."""
    if not source.exists():
        raise PlaitError(f"{source}: no such model or export folder")
    if is_export_folder(source):
        record = read_export_json(source)
        origin = Path(record.get("source", {}).get("folder", ""))
        return source, origin if (origin / "model.safetensors").is_file() else None
    from plait.export.api import export

    log.info("exporting %s to ONNX first", source)
    export(source, scratch / "fp32", data=test)
    return scratch / "fp32", source


def _calibration_table(predictor: BasePredictor, calibration: str | Path | None) -> str:
    table = calibration if calibration is not None else predictor.config.data.train
    if not table or not Path(table).exists():
        raise PlaitError(
            f"static quantization calibrates on training rows, and the model's training table "
            f"{table} is not there: pass --calibration TABLE (rows like the training data)"
        )
    return str(table)


def _refuse_to_replace(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        if not is_export_folder(folder):
            raise PlaitError(
                f"cannot write the quantized export to {folder}: it holds other files and "
                "is replaced as a whole; choose a new or empty folder"
            )


def _copy_export(source: Path, staging: Path) -> None:
    """Every file of the FP32 export but its record and manifest (rewritten) and reports."""
    for item in source.iterdir():
        if item.name in (EXPORT_JSON, MANIFEST, REPORT):
            continue
        if item.is_dir():
            shutil.copytree(item, staging / item.name)
        elif item.suffix != ".onnx":
            shutil.copy2(item, staging / item.name)


def _seal(staging: Path) -> None:
    """The export folder's manifest: size and sha256 of every other file."""
    files = {
        p.relative_to(staging).as_posix(): {"size": p.stat().st_size, "sha256": sha256(p)}
        for p in sorted(staging.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    atomic_write_json(
        staging / MANIFEST, {"format": FORMAT, "version": FORMAT_VERSION, "files": files}
    )


def _measure(
    fp32: BasePredictor,
    export_dir: Path,
    out: Path,
    torch_folder: Path | None,
    record: dict[str, Any],
    test: str | Path | None,
    threads: int | None,
    repeats: int,
) -> QuantizeResult:
    import torch

    from plait.compress.quant_measure import (
        aligned_quality,
        file_mb,
        first_batch,
        latency_rows,
        supervised_quality,
    )
    from plait.export.onnx_predictor import load_export
    from plait.tasks import load

    if threads is not None:
        torch.set_num_threads(threads)
    int8 = load_export(out, threads=threads)
    data, described = test_rows(fp32, test)
    pytorch = load(torch_folder) if torch_folder is not None else None
    rows: list[Any] = []
    notes: list[str] = []
    for name, entry in record["graphs"].items():
        spec = GraphSpec.from_dict(entry)
        batch = first_batch(fp32, spec, data)
        sessions = {
            "onnx fp32": _session_of(fp32, name),
            "onnx int8": _session_of(int8, name),
        }
        sizes = {
            "onnx fp32": file_mb(export_dir / entry["file"]),
            "onnx int8": file_mb(out / entry["file"]),
        }
        graph_rows = latency_rows(
            name, spec, sessions, sizes, _torch_run(pytorch, name), batch, repeats
        )
        rows += graph_rows
        notes += _slower_notes(name, graph_rows, out / entry["file"])
    if "pair" in record:
        quality = aligned_quality(fp32, int8, data)
    else:
        quality = supervised_quality(fp32, int8, data)
    return QuantizeResult(out, rows, quality, notes, {"measured_on": described})


def _session_of(predictor: BasePredictor, graph: str) -> Any:
    model: Any = predictor.model
    graphs = getattr(model, "towers", None)
    if graphs is not None:
        return graphs[graph.removeprefix("tower ")].session
    return model.graph.session


def _torch_run(pytorch: BasePredictor | None, graph: str) -> Any:
    """The PyTorch model on a batch, as the graph `graph` runs it (None without one)."""
    if pytorch is None:
        return None
    model: Any = pytorch.model.eval()
    if graph.startswith("tower "):
        name = graph.removeprefix("tower ")
        return lambda batch: model.embed(name, batch.inputs[name])
    return lambda batch: model(batch.inputs, batch.presence)


def _slower_notes(name: str, rows: list[Any], path: Path) -> list[str]:
    """Say where INT8 is slower than FP32, with the quantized operators to blame."""
    from plait.compress.onnx_quant import op_counts

    by = {row.runtime: row for row in rows}
    fp32, int8 = by["onnx fp32"], by["onnx int8"]
    notes = []
    for label, a, b in (
        ("batch 1", fp32.latency_b1_ms, int8.latency_b1_ms),
        ("batch 32", fp32.latency_b32_ms, int8.latency_b32_ms),
    ):
        if b > a:
            ops = ", ".join(f"{op} x{n}" for op, n in op_counts(path).items()) or "none"
            notes.append(
                f"{name}: INT8 is {b / a:.2f}x SLOWER than FP32 at {label} "
                f"({b:.3f} vs {a:.3f} ms); its quantized operators: {ops}"
            )
    return notes


def read_report(folder: str | Path) -> dict[str, Any]:
    """A quantized export's quantize_report.json."""
    return dict(json.loads((Path(folder) / REPORT).read_text()))
