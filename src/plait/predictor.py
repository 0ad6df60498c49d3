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
    manifest.json        size and checksum of every file, written last (see plait.model_folder)
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
from plait.data.bad_rows import BadRows, OnError, with_bad_rows
from plait.data.batch import Batch
from plait.data.prepare import bad_rows_of
from plait.errors import PlaitError, RowProblem
from plait.evaluation import compute_metrics
from plait.model import MultimodalModel
from plait.model_folder import (
    load_weights_into,
    raw_config,
    read_config,
    read_folder,
    save_folder,
)

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
        self.last_problems: list[RowProblem] = []  # of the last table read
        self.last_bad_rows: BadRows | None = None  # the same, with each bad row's id

    @property
    def task(self) -> str:
        return self.config.head.task

    # ----------------------------------------------------------------- inference
    def dataset(
        self, data: Any, require_labels: bool = False, on_error: OnError = "raise"
    ) -> MultimodalDataset:
        """`data` (a path or DataFrame) read and validated as a dataset of its good rows;
        an already prepared `MultimodalDataset` is returned as it is.

        A table's problems are kept in `last_problems` and `last_bad_rows` (with each bad
        row's id); `on_error` (`raise` or `skip`) is this call's choice, never the
        training config's.
        """
        if isinstance(data, MultimodalDataset):
            return data
        dataset, self.last_problems = prepare_inference(
            data,
            self.config,
            self.processors,
            self.labels,
            require_labels=require_labels,
            on_error=on_error,
        )
        self.last_bad_rows = bad_rows_of(dataset, self.config, self.last_problems)
        return dataset

    def batches(
        self, data: Any, require_labels: bool, batch_size: int, on_error: OnError = "raise"
    ) -> Iterator[Batch]:
        """Collated batches of `data` (a path, DataFrame or an already prepared
        `MultimodalDataset`), on the CPU, for code that runs the model itself."""
        dataset = self.dataset(data, require_labels, on_error)
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
        on_error: OnError = "raise",
    ) -> tuple[list[str], np.ndarray, np.ndarray | None]:
        """Raw model outputs of the good rows: (ids, outputs [N, K] as probabilities or
        values, labels).

        `transform` rewrites each collated batch (on the CPU, before it moves to the
        model's device), e.g. to hide or perturb a modality (`plait.evaluation.robustness`).
        """
        device = next(self.model.parameters()).device
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
    A missing, half-saved or corrupt folder raises one `PlaitError` naming the file
    (checks in `plait.model_folder`).
    """
    if raw_config(path).get("alignment") is not None:
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
