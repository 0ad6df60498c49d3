"""A trained supervised model (classification, multilabel, regression) ready for use:
predict, predict_proba, evaluate; loading, batching and saving come from `BasePredictor`.

A saved model is a folder (no pickles; layout in `plait.model_folder`)::

    config.yaml          the resolved run config
    model.safetensors    all weights, pretrained towers included
    labels.json          the label space (classes / targets)
    processors/<name>/   tokenizer, vocabulary or feature-extractor settings
    hub/<name>/          Hugging Face architecture config, so the model rebuilds offline
    metrics.json         test metrics at save time (when known)
    manifest.json        task, size and checksum of every file, written last
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from plait.build import build_model
from plait.config import PlaitConfig
from plait.data import LabelSpace, MultimodalDataset
from plait.data.bad_rows import OnError, with_bad_rows
from plait.data.batch import Batch
from plait.errors import PlaitError
from plait.evaluation.metrics import compute_metrics
from plait.heads.activation import activate
from plait.model import MultimodalModel
from plait.model_folder import FolderContents
from plait.tasks.predictor import BasePredictor, check_finite_outputs


class Predictor(BasePredictor):
    """Model + preprocessing + labels. Build with `plait.load(folder)` or from a run."""

    model: MultimodalModel
    labels: LabelSpace

    def __init__(
        self,
        model: MultimodalModel,
        config: PlaitConfig,
        processors: dict[str, Any],
        labels: LabelSpace | None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        if labels is None:
            raise PlaitError("a supervised model needs its label space")
        super().__init__(model, config, processors, labels, metrics)

    @property
    def task(self) -> str:
        return self.config.head.task

    # ----------------------------------------------------------------- inference
    def dataset(
        self, data: Any, require_labels: bool = False, on_error: OnError = "raise"
    ) -> MultimodalDataset:
        """`data` (a path or DataFrame) read and validated as a dataset of its good rows;
        an already prepared `MultimodalDataset` is returned as it is (see `prepare`)."""
        return self.prepare(data, require_labels=require_labels, on_error=on_error)

    def batches(
        self, data: Any, require_labels: bool, batch_size: int, on_error: OnError = "raise"
    ) -> Iterator[Batch]:
        """Collated batches of `data` (a path, DataFrame or an already prepared
        `MultimodalDataset`), on the CPU, for code that runs the model itself."""
        yield from self.loader(self.dataset(data, require_labels, on_error), batch_size)

    @torch.inference_mode()
    def outputs(
        self,
        data: Any,
        *,
        require_labels: bool = False,
        batch_size: int = 64,
        transform: Callable[[Batch], Batch] | None = None,
        on_error: OnError = "raise",
    ) -> tuple[list[str], np.ndarray, np.ndarray | None]:
        """Raw model outputs of the good rows: (ids, outputs [N, K] as probabilities or
        values, labels).

        `transform` rewrites each collated batch (on the CPU, before it moves to the
        model's device), e.g. to hide or perturb a modality (`plait.evaluation.robustness`).
        """
        device = self.device
        ids: list[str] = []
        outs: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        for batch in self.batches(data, require_labels, batch_size, on_error):
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

    def predict_proba(
        self, data: Any, batch_size: int = 64, *, on_error: OnError = "skip"
    ) -> pd.DataFrame:
        """Per-class probabilities (classification, multilabel) with an `id` column; one
        row per input row, as `predict`."""
        if self.task == "regression":
            raise PlaitError("predict_proba is for classification models; use predict")
        dataset = self.dataset(data, on_error=on_error)
        ids, probs, _ = self.outputs(dataset, batch_size=batch_size)
        frame = pd.DataFrame(probs, columns=[f"proba_{c}" for c in self.labels.names])
        frame.insert(0, "id", ids)
        return self._every_row(frame, dataset, data)

    def predict(
        self, data: Any, batch_size: int = 64, *, on_error: OnError = "skip"
    ) -> pd.DataFrame:
        """Predictions with an `id` column; class models add one `proba_<class>` per class.

        One row per input row, in input order. With `on_error="skip"` (the default) a row
        that cannot be read (a missing or corrupt file...) keeps its row with an empty
        prediction, and an `error` column (present only then) says why; `last_bad_rows`
        lists every problem with the row's id. `on_error="raise"` refuses the table.
        """
        dataset = self.dataset(data, on_error=on_error)
        ids, out, _ = self.outputs(dataset, batch_size=batch_size)
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
        return self._every_row(frame, dataset, data)

    def _every_row(
        self, frame: pd.DataFrame, dataset: MultimodalDataset, data: Any
    ) -> pd.DataFrame:
        """The good rows' `frame` put back among the skipped rows of the table `data`."""
        if dataset is data:  # a prepared dataset: its rows are the input rows
            return frame
        return with_bad_rows(frame, dataset.rows, self.last_bad_rows)

    def evaluate(
        self,
        data: Any,
        batch_size: int = 64,
        transform: Callable[[Batch], Batch] | None = None,
        *,
        on_error: OnError = "raise",
    ) -> dict[str, Any]:
        """Metrics on labelled data (same report format as training); `transform` as in
        `outputs`.

        `on_error="raise"` (the default) refuses a table with bad rows: metrics on a
        silently smaller set would mislead. With `skip` the metrics cover the good rows
        and `skipped_rows` says how many were left out (listed in `last_bad_rows`).
        """
        dataset = self.dataset(data, require_labels=True, on_error=on_error)
        _, out, labels = self.outputs(
            dataset, require_labels=True, batch_size=batch_size, transform=transform
        )
        if labels is None or len(labels) == 0:
            raise PlaitError("no labelled rows to evaluate")
        if self.task == "regression":
            out, labels = self.labels.denormalize(out), self.labels.denormalize(labels)
        metrics = compute_metrics(self.task, labels, out, self.labels.names)
        if dataset is not data and self.last_bad_rows is not None:
            metrics["skipped_rows"] = len(self.last_bad_rows.rows)
        return metrics

    # ------------------------------------------------------------------ save / load
    @classmethod
    def build_model(
        cls, config: PlaitConfig, found: FolderContents, folder: Path
    ) -> MultimodalModel:
        if found.labels is None:
            raise PlaitError(f"{folder} has no labels.json: not a saved supervised model")
        return build_model(config, found.processors, found.labels.num_outputs, load_weights=False)

    def card_summary(self) -> str:
        return f"Plait model, task `{self.config.head.task}`, fusion `{self.config.fusion.method}`."

    def card_details(self) -> list[str]:
        return [f"Outputs: {', '.join(map(str, self.labels.names))}", ""]

    def card_usage(self) -> list[str]:
        return ["model.predict(df)"]
