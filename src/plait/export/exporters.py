"""The two PyTorch ONNX exporters, tried per graph.

No single exporter covers every encoder (torch 2.13): the dynamo exporter
(`torch.export`) traces Transformer layers with symbolic shapes but not packed
sequences, so the GRU text encoder switches to an unpacked path while exporting
(`plait.encoders.text._gru_unpacked`); the legacy TorchScript exporter translates packed
GRUs but freezes the reshapes inside `nn.MultiheadAttention` at the sample's batch and
length, which only a parity check at other sizes reveals. So each graph is exported by
the first exporter of the order that both succeeds and passes parity
(`plait.export.api`), and `export.json` records which one that was.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from plait.export.attention import traceable_attention
from plait.export.graphs import GraphSpec

log = logging.getLogger(__name__)

#: the order `exporter="auto"` tries: legacy first, since it takes well under a second on
#: the small models where it is correct, while torch.export takes tens of seconds
AUTO_ORDER = ("legacy", "dynamo")


def export_legacy(
    graph: nn.Module, spec: GraphSpec, sample: tuple[Tensor, ...], path: Path
) -> None:
    """TorchScript tracing (`dynamo=False`) with named dynamic axes; multi-head attention
    runs a traceable forward meanwhile (`plait.export.attention`)."""
    with warnings.catch_warnings(), traceable_attention():
        warnings.simplefilter("ignore")  # deprecation and tracer warnings; parity decides
        torch.onnx.export(
            graph,
            sample,
            str(path),
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_axes=spec.dynamic_axes(),
            dynamo=False,
        )


def export_dynamo(
    graph: nn.Module, spec: GraphSpec, sample: tuple[Tensor, ...], path: Path
) -> None:
    """`torch.export` (`dynamo=True`) with every named axis dynamic; weights inline."""
    dims: dict[str, object] = {}

    def dim(name: str) -> object:
        if name not in dims:
            dims[name] = torch.export.Dim.DYNAMIC
        return dims[name]

    shapes = tuple({axis: dim(name) for axis, name in i.axes.items()} for i in spec.inputs)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph,
            sample,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_shapes=(shapes,),
            dynamo=True,
            external_data=False,
            optimize=False,  # ONNX Runtime optimises the graph when it loads it
            verbose=False,
        )
        assert program is not None
        program.save(str(path), external_data=False)


EXPORTERS: dict[str, Callable[[nn.Module, GraphSpec, tuple[Tensor, ...], Path], None]] = {
    "legacy": export_legacy,
    "dynamo": export_dynamo,
}


def exporter_order(choice: str) -> tuple[str, ...]:
    """`auto` -> both, legacy first; a name -> that one alone."""
    if choice == "auto":
        return AUTO_ORDER
    if choice not in EXPORTERS:
        from plait.errors import PlaitError

        raise PlaitError(f"unknown exporter {choice!r}: use auto, {', '.join(EXPORTERS)}")
    return (choice,)
