"""INT8 quantization of one ONNX graph file with ONNX Runtime's quantization tool.

- `dynamic`: weights stored as INT8, activations quantized on the fly per call
  (`quantize_dynamic`); no calibration data. Only MatMul / Gemm / Attention-style
  operators are quantized: dynamic Conv becomes `ConvInteger`, which ONNX Runtime's CPU
  kernels run slower than FP32 Conv, so convolutions stay FP32 unless asked for.
- `static`: weights and activations INT8 with scales fixed from calibration rows
  (`quantize_static`, QDQ format, MinMax ranges) for the operators with weights (Conv,
  MatMul, Gemm, Attention), convolutions included.

Weights are quantized per output channel by default: one scale per row of a MatMul
weight instead of one for the whole matrix. On the real MiniLM tower the per-tensor
default kept a cosine of only 0.949 to FP32 at worst, per channel 0.990.

The graph is first passed through `quant_pre_process` (shape inference and ONNX Runtime's
graph optimisations), as ONNX Runtime recommends; when that step fails for a graph its
reason is logged and the graph is quantized as exported.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Sequence
from contextlib import chdir
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("plait")

Method = Literal["dynamic", "static"]
METHODS: tuple[str, ...] = ("dynamic", "static")
DYNAMIC_OPS = ["MatMul", "Gemm", "Attention", "LSTM", "GRU"]
# static: the operators with weights; Q/DQ pairs around every Reshape, Where or Gather
# would cost more than they save on graphs this size
STATIC_OPS = ["Conv", "MatMul", "Gemm", "Attention"]


@dataclass
class GraphQuantization:
    """How one graph file was quantized (recorded in export.json)."""

    method: str
    per_channel: bool
    op_types: list[str] | None
    preprocessed: bool
    preprocess_note: str | None = None
    quantized_ops: dict[str, int] = field(default_factory=dict)
    kept_fp32: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "per_channel": self.per_channel,
            "op_types": self.op_types,
            "kept_fp32": self.kept_fp32,
            "preprocessed": self.preprocessed,
            "preprocess_note": self.preprocess_note,
            "quantized_ops": self.quantized_ops,
        }


def quantize_graph(
    source: Path,
    target: Path,
    method: Method,
    *,
    per_channel: bool = True,
    reader: Any = None,
    op_types: list[str] | None = None,
    keep_fp32: Sequence[str] = (),
) -> GraphQuantization:
    """Quantize `source` (FP32 .onnx) into `target`; `reader` (a CalibrationDataReader)
    is required for `static`. `op_types` None: the method's default set. Nodes whose
    name contains one of `keep_fp32` (e.g. `/net/`, a projection head) stay FP32."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    prepared, note = _preprocess(source, target.with_suffix(".pre.onnx"))
    kept = _matching_nodes(prepared, keep_fp32)
    try:
        if method == "dynamic":
            ops = op_types if op_types is not None else DYNAMIC_OPS
            quantize_dynamic(
                str(prepared),
                str(target),
                op_types_to_quantize=ops,
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=kept,
                extra_options={"MatMulConstBOnly": True},
            )
        else:
            if reader is None:
                raise ValueError("static quantization needs calibration rows")
            ops = op_types if op_types is not None else STATIC_OPS
            quantize_static(
                str(prepared),
                str(target),
                reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=ops,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=kept,
                extra_options={"MatMulConstBOnly": True},
            )
    finally:
        if prepared != source:
            prepared.unlink(missing_ok=True)
    return GraphQuantization(
        method, per_channel, ops, prepared != source, note, op_counts(target), kept
    )


def _matching_nodes(path: Path, patterns: Sequence[str]) -> list[str]:
    """Names of the graph's nodes that contain one of `patterns`."""
    if not patterns:
        return []
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    names = [n.name for n in graph.node if any(p in n.name for p in patterns)]
    # dynamic quantization first rewrites each Gemm as `<name>_MatMul` + `<name>_Add`
    gemms = [n.name for n in graph.node if n.op_type == "Gemm" and n.name in names]
    return names + [f"{name}_MatMul" for name in gemms]


def _preprocess(source: Path, target: Path) -> tuple[Path, str | None]:
    """ONNX Runtime's recommended pre-processing; (the graph to quantize, a note when a
    step was left out). Symbolic shape inference (for transformers) fails on some
    graphs; ONNX's own shape inference is then used, and failing that, none."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    notes = []
    for symbolic in (True, False):
        try:
            # it writes scratch files (`sym_shape_infer_temp.onnx`, `<uuid>.data`) into
            # the working folder: run it in a folder of its own, never the user's
            with tempfile.TemporaryDirectory(prefix="plait-quant-") as work, chdir(work):
                quant_pre_process(
                    str(source.resolve()), str(target.resolve()), skip_symbolic_shape=not symbolic
                )
        except Exception as exc:  # noqa: BLE001  (any failure: try the next, then none)
            step = "symbolic shape inference" if symbolic else "pre-processing"
            notes.append(
                f"{step} failed ({type(exc).__name__}: {' '.join(str(exc).split())[:150]})"
            )
            target.unlink(missing_ok=True)
            continue
        note = "; ".join(notes) or None
        if note:
            log.info("%s: %s; used ONNX shape inference", source.name, note)
        return target, note
    note = "; ".join(notes) + "; quantized as exported"
    log.info("%s: %s", source.name, note)
    return source, note


INTEGER_OPS = {
    "MatMulInteger",
    "ConvInteger",
    "DynamicQuantizeMatMul",
    "QLinearMatMul",
    "QLinearConv",
    "QAttention",
    "DynamicQuantizeLSTM",
    "QGemm",
}


def op_counts(path: Path) -> dict[str, int]:
    """The operators a graph file runs in INT8, by type: integer kernels (dynamic
    quantization), and for QDQ graphs (static) each operator fed by a DequantizeLinear,
    as `Conv (QDQ)`: ONNX Runtime fuses those into integer kernels when it loads them."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dequantized = {out for n in graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    counts: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type in INTEGER_OPS:
            counts[node.op_type] += 1
        elif node.op_type not in ("QuantizeLinear", "DequantizeLinear") and any(
            name in dequantized for name in node.input
        ):
            counts[f"{node.op_type} (QDQ)"] += 1
    return dict(sorted(counts.items()))
