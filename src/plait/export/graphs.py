"""What one exported graph is: a plain module over flat, named tensors.

ONNX graphs take a flat list of named inputs, while a Plait model takes nested dicts
(`{modality: {key: tensor}}` + `{modality: presence}`). A `GraphSpec` names every input
(`<modality>.<key>`, `<modality>.present`) with its dynamic axes, and the two wrappers
turn the flat inputs back into the dicts, so the exported graph is the model's own
`forward` (supervised) or `embed` (one aligned tower) and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from plait.alignment.model import AlignedModel

PRESENT = "present"
OUTPUTS = "outputs"
EMBEDDING = "embedding"
BATCH = "batch"


@dataclass(frozen=True)
class GraphInput:
    """One input of a graph: `<modality>.<key>` (a processor's tensor) or
    `<modality>.present` (the [B] bool presence mask), and its dynamic axes."""

    modality: str
    key: str
    axes: dict[int, str]

    @property
    def name(self) -> str:
        return f"{self.modality}.{self.key}"


@dataclass
class GraphSpec:
    """The inputs and the output of one graph file."""

    file: str
    inputs: list[GraphInput]
    output: str
    output_axes: dict[int, str] = field(default_factory=lambda: {0: BATCH})
    #: outputs after the first (a captioner's encoder: memory and its mask), name -> axes
    more_outputs: dict[str, dict[int, str]] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [self.output, *self.more_outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {i.name: dict(i.axes) for i in self.inputs}
        axes[self.output] = dict(self.output_axes)
        axes.update({name: dict(a) for name, a in self.more_outputs.items()})
        return axes

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "inputs": [
                {"name": i.name, "modality": i.modality, "key": i.key, "dynamic_axes": i.axes}
                for i in self.inputs
            ],
            "output": {"name": self.output, "dynamic_axes": self.output_axes},
        }
        if self.more_outputs:
            out["more_outputs"] = [
                {"name": n, "dynamic_axes": a} for n, a in self.more_outputs.items()
            ]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphSpec:
        inputs = [
            GraphInput(i["modality"], i["key"], {int(a): n for a, n in i["dynamic_axes"].items()})
            for i in data["inputs"]
        ]
        output = data["output"]
        axes = {int(a): n for a, n in output["dynamic_axes"].items()}
        more = {
            o["name"]: {int(a): n for a, n in o["dynamic_axes"].items()}
            for o in data.get("more_outputs", [])
        }
        return cls(data["file"], inputs, output["name"], axes, more)

    def flatten(
        self, inputs: Mapping[str, Mapping[str, Tensor]], presence: Mapping[str, Tensor]
    ) -> tuple[Tensor, ...]:
        """A batch's nested tensors in this graph's input order."""
        return tuple(
            presence[i.modality].bool() if i.key == PRESENT else inputs[i.modality][i.key]
            for i in self.inputs
        )


def tensor_axes(kind: str, modality: str, key: str, ndim: int) -> dict[int, str]:
    """Dynamic axes of a processor's tensor: the batch always; tokens of text, the last
    axis (frames of a spectrogram, samples of a waveform) of audio; images keep their
    fitted size."""
    axes = {0: BATCH}
    if kind == "text" and ndim >= 2:
        axes[1] = f"{modality}_tokens"
    elif kind == "audio" and ndim >= 2:
        axes[ndim - 1] = (
            f"{modality}_{'frames' if key in ('features', 'input_features') else 'samples'}"
        )
    return axes


def spec_of(
    file: str,
    sample: Mapping[str, Mapping[str, Tensor]],
    kinds: Mapping[str, str],
    output: str,
    with_presence: bool,
) -> GraphSpec:
    """The spec of a graph over the modalities of `sample` (a collated batch's inputs)."""
    inputs = [
        GraphInput(m, key, tensor_axes(kinds[m], m, key, value.dim()))
        for m, tensors in sample.items()
        for key, value in tensors.items()
    ]
    if with_presence:
        inputs += [GraphInput(m, PRESENT, {0: BATCH}) for m in sample]
    return GraphSpec(file, inputs, output)


class SupervisedGraph(nn.Module):
    """Flat named tensors -> `MultimodalModel.forward`: raw outputs [B, K]."""

    def __init__(self, model: nn.Module, spec: GraphSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec

    def forward(self, *tensors: Tensor) -> Tensor:
        inputs: dict[str, dict[str, Tensor]] = {}
        presence: dict[str, Tensor] = {}
        for item, tensor in zip(self.spec.inputs, tensors, strict=True):
            if item.key == PRESENT:
                presence[item.modality] = tensor
            else:
                inputs.setdefault(item.modality, {})[item.key] = tensor
        return self.model(inputs, presence)  # [B, K]


class TowerGraph(nn.Module):
    """Flat named tensors of one modality -> `AlignedModel.embed`: unit vectors [B, D]."""

    def __init__(self, model: AlignedModel, name: str, spec: GraphSpec) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.spec = spec

    def forward(self, *tensors: Tensor) -> Tensor:
        inputs = {item.key: t for item, t in zip(self.spec.inputs, tensors, strict=True)}
        return self.model.embed(self.name, inputs)  # [B, D]


def as_numpy_feed(spec: GraphSpec, tensors: tuple[Tensor, ...]) -> dict[str, Any]:
    """ONNX Runtime's feed: input name -> numpy array."""
    return {
        name: t.detach().cpu().numpy() for name, t in zip(spec.input_names, tensors, strict=True)
    }


@torch.inference_mode()
def run_torch(graph: nn.Module, tensors: tuple[Tensor, ...]) -> Tensor:
    return graph(*tensors)
