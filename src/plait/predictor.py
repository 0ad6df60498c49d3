"""A trained model ready for use: predict, predict_proba, evaluate, save and load.

Inference never builds a Lightning trainer: a loaded model is a plain module, the
preprocessing state and a label space, so one row predicts in milliseconds.
A saved model is a folder (no pickles)::

    config.yaml          the resolved run config
    model.safetensors    all weights, pretrained towers included
    labels.json          the label space (classes / targets)
    processors/<name>/   tokenizer, vocabulary or feature-extractor settings
    hub/<name>/          Hugging Face architecture config, so the model rebuilds offline
    metrics.json         test metrics at save time (when known)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from plait.build import build_model
from plait.config import PlaitConfig
from plait.data import LabelSpace, MultimodalDataset, prepare_inference
from plait.data.batch import Batch
from plait.errors import PlaitError
from plait.evaluation import compute_metrics
from plait.model import MultimodalModel
from plait.model_folder import load_weights_into, read_config, read_folder, save_folder

if TYPE_CHECKING:
    from plait.alignment.predictor import AlignedPredictor


class Predictor:
    """Model + preprocessing + labels. Build with `plait.load(folder)` or from a run."""

    def __init__(
        self,
        model: MultimodalModel,
        config: PlaitConfig,
        processors: dict[str, Any],
        labels: LabelSpace,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        self.model = model.eval()
        self.config = config
        self.processors = processors
        self.labels = labels
        self.metrics = metrics or {}
        self.last_problems: list = []

    @property
    def task(self) -> str:
        return self.config.head.task

    # ----------------------------------------------------------------- inference
    def batches(self, data: Any, require_labels: bool, batch_size: int) -> Iterator[Batch]:
        """Collated batches of `data` (a path, DataFrame or an already prepared
        `MultimodalDataset`), on the CPU, for code that runs the model itself."""
        if isinstance(data, MultimodalDataset):
            dataset = data
        else:
            dataset, self.last_problems = prepare_inference(
                data, self.config, self.processors, self.labels, require_labels=require_labels
            )
        loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=False, collate_fn=dataset.collate
        )
        yield from loader

    @torch.inference_mode()
    def outputs(
        self,
        data: Any,
        *,
        require_labels: bool = False,
        batch_size: int = 64,
        transform: Callable[[Batch], Batch] | None = None,
    ) -> tuple[list[str], np.ndarray, np.ndarray | None]:
        """Raw model outputs: (ids, outputs [N, K] as probabilities or values, labels).

        `transform` rewrites each collated batch (on the CPU, before it moves to the
        model's device), e.g. to hide or perturb a modality (`plait.evaluation.robustness`).
        """
        device = next(self.model.parameters()).device
        ids: list[str] = []
        outs: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        for batch in self.batches(data, require_labels, batch_size):
            if transform is not None:
                batch = transform(batch)
            batch = batch.to(device)
            raw = self.model(batch.inputs, batch.presence)  # [B, K]
            check_finite_outputs(raw, batch.ids)
            outs.append(activate(raw, self.task).float().cpu().numpy())
            ids.extend(batch.ids)
            if batch.labels is not None:
                targets.append(batch.labels.cpu().numpy())
        width = self.labels.num_outputs
        stacked = np.concatenate(outs) if outs else np.zeros((0, width), np.float32)
        labels = np.concatenate(targets) if targets else None
        return ids, stacked, labels

    def predict_proba(self, data: Any, batch_size: int = 64) -> pd.DataFrame:
        """Per-class probabilities (classification, multilabel) with an `id` column."""
        if self.task == "regression":
            raise PlaitError("predict_proba is for classification models; use predict")
        ids, probs, _ = self.outputs(data, batch_size=batch_size)
        frame = pd.DataFrame(probs, columns=[f"proba_{c}" for c in self.labels.names])
        frame.insert(0, "id", ids)
        return frame

    def predict(self, data: Any, batch_size: int = 64) -> pd.DataFrame:
        """Predictions with an `id` column; class models add one `proba_<class>` per class."""
        ids, out, _ = self.outputs(data, batch_size=batch_size)
        frame = pd.DataFrame({"id": ids})
        if self.task == "classification":
            frame["prediction"] = [self.labels.names[i] for i in out.argmax(1)] if len(out) else []
            for j, name in enumerate(self.labels.names):
                frame[f"proba_{name}"] = out[:, j]
        elif self.task == "multilabel":
            sep = self.config.head.label_separator
            frame["prediction"] = [
                sep.join(n for n, p in zip(self.labels.names, row, strict=True) if p >= 0.5)
                for row in out
            ]
            for j, name in enumerate(self.labels.names):
                frame[f"proba_{name}"] = out[:, j]
        else:
            values = self.labels.denormalize(out)
            for j, name in enumerate(self.labels.names):
                frame[name] = values[:, j]
        return frame

    def evaluate(
        self,
        data: Any,
        batch_size: int = 64,
        transform: Callable[[Batch], Batch] | None = None,
    ) -> dict[str, Any]:
        """Metrics on labelled data (same report format as training); `transform` as in
        `outputs`."""
        _, out, labels = self.outputs(
            data, require_labels=True, batch_size=batch_size, transform=transform
        )
        if labels is None or len(labels) == 0:
            raise PlaitError("no labelled rows to evaluate")
        if self.task == "regression":
            out, labels = self.labels.denormalize(out), self.labels.denormalize(labels)
        return compute_metrics(self.task, labels, out, self.labels.names)

    # ------------------------------------------------------------------ save / load
    def save(self, folder: str | Path) -> Path:
        """Write the model folder (layout in `plait.model_folder`)."""
        return save_folder(
            folder,
            model=self.model,
            config=self.config,
            processors=self.processors,
            labels=self.labels,
            metrics=self.metrics,
            card=_model_card(self),
        )

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> Predictor:
        config = read_config(folder)
        found = read_folder(folder, config)
        if found.labels is None:
            raise PlaitError(f"{folder} has no labels.json: not a saved supervised model")
        model = build_model(config, found.processors, found.labels.num_outputs, load_weights=False)
        load_weights_into(model, folder, device)
        return cls(model, config, found.processors, found.labels, found.metrics)


def load(path: str | Path, device: str = "cpu") -> Predictor | AlignedPredictor:
    """Load a saved model folder: `plait.load("runs/demo/model").predict(df)`.

    A folder saved by an alignment run (its config.yaml has an `alignment:` block) loads
    as an `AlignedPredictor` (embed, similarity, zero-shot); any other as a `Predictor`.
    """
    config = Path(path) / "config.yaml"
    raw = _load_yaml(config) if config.is_file() else None
    if isinstance(raw, dict) and raw.get("alignment") is not None:
        from plait.alignment.predictor import AlignedPredictor  # imports this module

        return AlignedPredictor.load(path, device=device)
    return Predictor.load(path, device=device)


def activate(raw: torch.Tensor, task: str) -> torch.Tensor:
    """Raw head outputs -> probabilities (classification, multilabel) or values."""
    if task == "classification":
        return raw.softmax(-1)
    if task == "multilabel":
        return raw.sigmoid()
    return raw


def check_finite_outputs(raw: torch.Tensor, ids: list[str]) -> None:
    """Predictions are never NaN without an error: name the rows whose outputs [B, K]
    hold NaN or infinite values (broken weights, or inputs no check could catch)."""
    bad = ~torch.isfinite(raw.detach().float()).reshape(len(raw), -1).all(1)  # [B]
    if bool(bad.any()):
        rows = [ids[i] for i in bad.nonzero().flatten().tolist()]
        shown = ", ".join(rows[:10]) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
        raise PlaitError(
            f"the model's outputs are NaN or infinite for {len(rows)} row(s) (ids: {shown}): "
            "its weights or these rows' inputs are broken, so no predictions are returned"
        )


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())


def _model_card(predictor: Predictor) -> str:
    cfg = predictor.config
    lines = [
        f"# {cfg.name}",
        "",
        f"Plait model, task `{cfg.head.task}`, fusion `{cfg.fusion.method}`.",
        "",
        "| modality | kind | column | encoder |",
        "| --- | --- | --- | --- |",
    ]
    for name, m in cfg.modalities.items():
        enc = m.encoder.model or m.encoder.type
        lines.append(f"| {name} | {m.kind} | {m.column} | {enc} |")
    lines += ["", f"Outputs: {', '.join(map(str, predictor.labels.names))}", ""]
    lines += [
        "```python",
        "import plait",
        'model = plait.load("<this folder>")',
        "model.predict(df)",
        "```",
        "",
    ]
    return "\n".join(lines)
