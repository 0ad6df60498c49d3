"""`plait.load(EXPORT_DIR)`: an export folder as a predictor that runs ONNX Runtime.

The predictors are the PyTorch ones (`Predictor`, `AlignedPredictor`,
`CaptioningPredictor`) with their model
swapped for a module that feeds the processors' tensors to ONNX Runtime sessions: rows
are read, validated, preprocessed and batched by the same code, and predict /
predict_proba / evaluate (supervised) or embed / embed_values / similarity / zeroshot /
evaluate (aligned), caption / evaluate (captioning: `caption_runtime`) return the same
columns. Only the graph run differs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from plait.config import PlaitConfig
from plait.errors import PlaitError
from plait.export.caption_runtime import OrtCaptioningModel
from plait.export.folder import read_export_json
from plait.export.graphs import GraphSpec
from plait.export.runtime import open_session
from plait.model_folder import raw_config, read_folder
from plait.tasks.aligned_predictor import AlignedPredictor
from plait.tasks.captioning_model import CaptionTokens
from plait.tasks.captioning_predictor import CaptioningPredictor
from plait.tasks.supervised_predictor import Predictor

log = logging.getLogger(__name__)


class OrtGraph:
    """One graph file's session and the names of its inputs."""

    def __init__(self, session: ort.InferenceSession, spec: GraphSpec) -> None:
        self.session = session
        self.spec = spec

    def run(
        self, inputs: Mapping[str, Mapping[str, Tensor]], presence: Mapping[str, Tensor]
    ) -> Tensor:
        tensors = self.spec.flatten(inputs, presence)
        feed = {
            name: t.detach().cpu().numpy()
            for name, t in zip(self.spec.input_names, tensors, strict=True)
        }
        out = self.session.run([self.spec.output], feed)[0]
        return torch.from_numpy(np.asarray(out))

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())


class OrtMultimodalModel(nn.Module):
    """Stands in for `MultimodalModel`: (inputs, presence) -> raw outputs [B, K]."""

    def __init__(self, graph: OrtGraph, modalities: Sequence[str]) -> None:
        super().__init__()
        self.graph = graph
        self.encoders: dict[str, nn.Module] = {}  # no PyTorch modules here (model card)
        self.modalities = list(modalities)  # the players of modality attribution

    def forward(self, inputs: dict[str, dict[str, Tensor]], presence: dict[str, Tensor]) -> Tensor:
        return self.graph.run(inputs, presence)


class OrtAlignedModel(nn.Module):
    """Stands in for `AlignedModel`: one session per tower; embed(name, inputs) -> [B, D]."""

    def __init__(self, towers: dict[str, OrtGraph], logit_scale: float, logit_bias: float) -> None:
        super().__init__()
        self.towers = towers
        self.encoders: dict[str, nn.Module] = {}
        self.logit_scale = torch.tensor(logit_scale)
        self.logit_bias = torch.tensor(logit_bias)

    @property
    def pair(self) -> tuple[str, str]:
        first, second = self.towers
        return first, second

    def embed(self, name: str, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.towers[name].run({name: inputs}, {})  # [B, D]

    def forward(self, inputs: Mapping[str, Mapping[str, Tensor]]) -> dict[str, Tensor]:
        return {name: self.embed(name, inputs[name]) for name in self.pair if name in inputs}


class _OnnxMixin:
    """What both ONNX predictors share: CPU tensors, the record, no re-saving."""

    export_record: dict[str, Any]
    folder: Path

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def providers(self) -> list[str]:
        """The ONNX Runtime providers the sessions run on (the first is used)."""
        return _providers_of(self.model)  # type: ignore[attr-defined]

    def save(self, folder: str | Path) -> Path:
        raise PlaitError(
            f"{self.folder} is an ONNX export, which has no PyTorch weights to save; copy the "
            "export folder, or save the model folder it came from"
        )


class OnnxPredictor(_OnnxMixin, Predictor):
    """A supervised model's ONNX export: predict, predict_proba, evaluate as `Predictor`."""

    def card_summary(self) -> str:
        return "ONNX export of a " + super().card_summary()


class OnnxAlignedPredictor(_OnnxMixin, AlignedPredictor):
    """An aligned model's ONNX towers: embed, embed_values, similarity, zeroshot,
    evaluate as `AlignedPredictor`."""


class OnnxCaptioningPredictor(_OnnxMixin, CaptioningPredictor):
    """A captioner's ONNX encoder and decoding step: caption and evaluate as
    `CaptioningPredictor` (the decoding loop in Python over ONNX Runtime)."""

    def card_summary(self) -> str:
        return (
            "ONNX export of a " + super().card_summary() + " Exported: the encoder side and "
            "one decoding step; the decoding loop runs in Python over ONNX Runtime."
        )


def _providers_of(model: nn.Module) -> list[str]:
    if isinstance(model, OrtCaptioningModel):
        return model.providers
    if isinstance(model, OrtMultimodalModel):
        return model.graph.providers
    if isinstance(model, OrtAlignedModel):
        return next(iter(model.towers.values())).providers
    return []


def load_export(
    folder: str | Path,
    providers: Sequence[str] | None = None,
    *,
    threads: int | None = None,
) -> OnnxPredictor | OnnxAlignedPredictor | OnnxCaptioningPredictor:
    """Load an export folder (checksums checked) as a predictor over ONNX Runtime.

    Args:
        providers: ONNX Runtime execution providers in order of preference (default
            CPU); one this install lacks is an error, a fallback is logged as a warning.
        threads: intra-op threads per session (default: ONNX Runtime's).
    """
    folder = Path(folder)
    record = read_export_json(folder)
    config = PlaitConfig.from_dict(raw_config(folder), source=str(folder / "config.yaml"))
    found = read_folder(folder, config)
    graphs = {
        name: OrtGraph(
            open_session(folder / entry["file"], providers, threads=threads),
            GraphSpec.from_dict(entry),
        )
        for name, entry in record["graphs"].items()
    }
    predictor: OnnxPredictor | OnnxAlignedPredictor | OnnxCaptioningPredictor
    if "captioning" in record:
        config = CaptioningPredictor.loaded_config(config, folder)  # hub LM config: hub/
        source, caption = config.captioning_pair
        tokens = CaptionTokens.of(found.processors[caption])
        encoder, step = graphs["caption encoder"], graphs["caption step"]
        captioner: Any = OrtCaptioningModel(
            source, tokens, (encoder.session, encoder.spec), (step.session, step.spec)
        )  # stands in for CaptioningModel (source, tokens, generate)
        predictor = OnnxCaptioningPredictor(
            captioner, config, found.processors, found.labels, found.metrics
        )
    elif "pair" in record:
        towers = {m: graphs[f"tower {m}"] for m in record["pair"]}
        model = OrtAlignedModel(towers, record["logit_scale"], record["logit_bias"])
        # the ONNX module stands in for AlignedModel (pair, embed, forward)
        aligned: Any = model
        predictor = OnnxAlignedPredictor(
            aligned, config, found.processors, found.labels, found.metrics
        )
    else:
        # the ONNX module stands in for MultimodalModel (forward(inputs, presence))
        supervised: Any = OrtMultimodalModel(graphs["model"], list(config.modalities))
        predictor = OnnxPredictor(
            supervised,
            config,
            found.processors,
            found.labels,
            found.metrics,
        )
    predictor.export_record = record
    predictor.folder = folder
    log.info("loaded the ONNX export %s (providers: %s)", folder, ", ".join(predictor.providers))
    return predictor
