"""What every trained model shares once it is ready for use: loading, batching, saving
and the model card, over one saved-folder format (`plait.model_folder`).

Each task's predictor adds only its own calls (`Predictor.predict` / `predict_proba`,
`AlignedPredictor.embed` / `similarity` / `zeroshot`) and says how its architecture is
rebuilt from a saved config (`build_model`). Inference never builds a Lightning trainer:
a loaded model is a plain module, the preprocessing state and a label space.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader

from plait.config import PlaitConfig
from plait.data import LabelSpace, MultimodalDataset, prepare_inference
from plait.data.bad_rows import BadRows, OnError
from plait.data.batch import Batch
from plait.data.manifest import read_table
from plait.data.prepare import bad_rows_of
from plait.errors import PlaitError, RowProblem
from plait.model_folder import (
    FolderContents,
    load_weights_into,
    read_config,
    read_folder,
    save_folder,
)
from plait.pruned_shapes import PRUNED_SHAPES, apply_pruned_shapes, shapes_document
from plait.utils.io import atomic_write_json
from plait.vlm.feature import (
    Describer,
    Description,
    descriptions_of,
    read_descriptions,
    write_descriptions,
)

P = TypeVar("P", bound="BasePredictor")


class BasePredictor:
    """Model + config + fitted processors + labels (+ the metrics it was saved with).

    Subclasses set `kind` (what the model card calls the model) and implement
    `build_model`, `card_summary` and `card_usage`; they may extend `loaded_config` and
    `save_extra` for files of their own.
    """

    model: nn.Module

    def __init__(
        self,
        model: nn.Module,
        config: PlaitConfig,
        processors: dict[str, Any],
        labels: LabelSpace | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        self.model = model.eval()
        self.config = config
        self.processors = processors
        self.labels = labels
        self.metrics = metrics or {}
        self.last_problems: list[RowProblem] = []  # of the last table read
        self.last_bad_rows: BadRows | None = None  # the same, with each bad row's id
        # modules that structured pruning resized (`plait.pruned_shapes`); saved with the model
        self.pruned_shapes: dict[str, Any] = {}
        # text modalities a large model writes (`plait.vlm.feature`); saved with the model
        self.descriptions: dict[str, Description] = descriptions_of(config)
        self._describer: Describer | None = None

    @property
    def task(self) -> str:
        """The row of `plait.tasks.TASKS` this model belongs to (recorded when saved)."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ batching
    def prepare(
        self,
        data: Any,
        *,
        modalities: Sequence[str] | None = None,
        labels: bool = True,
        require_labels: bool = False,
        on_error: OnError = "raise",
    ) -> MultimodalDataset:
        """`data` (a path or DataFrame) read and validated as a dataset of its good rows;
        an already prepared `MultimodalDataset` is returned as it is.

        `modalities` limits what is read and checked to those columns (all by default);
        `labels=False` ignores the label columns. A table's problems are kept in
        `last_problems` and `last_bad_rows` (with each bad row's id); `on_error` (`raise`
        or `skip`) is this call's choice, never the training config's.
        """
        if isinstance(data, MultimodalDataset):
            return data
        config, processors = self.config, self.processors
        if modalities is not None:
            config = config.model_copy(
                update={"modalities": {n: config.modalities[n] for n in modalities}}
            )
            processors = {n: processors[n] for n in modalities}
        data = self._described(data, [n for n in config.modalities if n in self.descriptions])
        dataset, self.last_problems = prepare_inference(
            data,
            config,
            processors,
            self.labels if labels else None,
            require_labels=require_labels,
            on_error=on_error,
        )
        self.last_bad_rows = bad_rows_of(dataset, config, self.last_problems)
        return dataset

    def _described(self, data: Any, names: list[str]) -> Any:
        """`data` with the columns a large model writes for `names` (the same backend and
        prompt as in training, through its answer cache)."""
        if not names:
            return data
        if self._describer is None:
            self._describer = Describer(self.descriptions)
        return self._describer.subset(names).add(read_table(data), progress=False)

    def loader(self, dataset: MultimodalDataset, batch_size: int) -> Iterator[Batch]:
        """Collated batches of `dataset` in order, on the CPU."""
        yield from DataLoader(
            dataset, batch_size=batch_size, shuffle=False, collate_fn=dataset.collate
        )

    def evaluate(
        self, data: Any, batch_size: int = 64, *, on_error: OnError = "raise"
    ) -> dict[str, Any]:
        """The task's metrics on labelled `data` (the report's `metrics.json`)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- save / load
    def save(self, folder: str | Path) -> Path:
        """Write the model folder (layout in `plait.model_folder`), recording the task."""
        return save_folder(
            folder,
            model=self.model,
            config=self.config,
            processors=self.processors,
            labels=self.labels,
            metrics=self.metrics,
            card=self.model_card(),
            task=self.task,
            extra=self._save_own_files,
        )

    def _save_own_files(self, staging: Path) -> None:
        if self.pruned_shapes:
            atomic_write_json(staging / PRUNED_SHAPES, shapes_document(self.pruned_shapes))
        if self.descriptions:
            write_descriptions(staging, self.descriptions)
        self.save_extra(staging)

    def save_extra(self, staging: Path) -> None:
        """Files of this predictor's own, written into the folder before it is sealed."""

    @classmethod
    def load(cls: type[P], folder: str | Path, device: str = "cpu") -> P:
        config = cls.loaded_config(read_config(folder), Path(folder))
        found = read_folder(folder, config)
        model = cls.build_model(config, found, Path(folder))
        pruned = apply_pruned_shapes(model, folder)  # a structurally pruned model's widths
        load_weights_into(model, folder, device)
        predictor = cls(model, config, found.processors, found.labels, found.metrics)
        predictor.pruned_shapes = pruned
        recorded = read_descriptions(Path(folder))
        if recorded is not None:  # the exact prompts and backend, as trained
            predictor.descriptions = recorded
        return predictor

    @classmethod
    def loaded_config(cls, config: PlaitConfig, folder: Path) -> PlaitConfig:
        """The saved config as the architecture is rebuilt from it (offline)."""
        return config

    @classmethod
    def build_model(cls, config: PlaitConfig, found: FolderContents, folder: Path) -> nn.Module:
        """The architecture of a saved folder, without pretrained weights."""
        raise NotImplementedError

    # ---------------------------------------------------------------- model card
    def model_card(self) -> str:
        """The folder's README.md: what the model is and how to use it."""
        cfg = self.config
        lines = [
            f"# {cfg.name}",
            "",
            self.card_summary(),
            "",
            "| modality | kind | column | encoder | pooling |",
            "| --- | --- | --- | --- | --- |",
        ]
        encoders = getattr(self.model, "encoders", {})
        for name in self.card_modality_names():
            m = cfg.modalities[name]
            choice = getattr(encoders[name], "pooling_choice", None) if name in encoders else None
            pooling = choice.describe() if choice is not None else m.encoder.pooling
            lines.append(
                f"| {name} | {m.kind} | {m.column} | {m.encoder.model or m.encoder.type} "
                f"| {pooling} |"
            )
        lines += ["", *self.card_params(), *self.card_details()]
        lines += ["```python", "import plait", 'model = plait.load("<this folder>")']
        lines += [*self.card_usage(), "```", ""]
        return "\n".join(lines)

    def card_modality_names(self) -> list[str]:
        return list(self.config.modalities)

    def card_params(self) -> list[str]:
        """Parameter counts, trainable and frozen apart (from metrics.json when known)."""
        total = self.metrics.get("params")
        if total is None:
            return []
        trainable = self.metrics.get("params_trainable")
        frozen = self.metrics.get("params_frozen")
        if trainable is None or frozen is None:
            return [f"Parameters: {total:,}", ""]
        return [f"Parameters: {total:,} ({trainable:,} trained, {frozen:,} frozen)", ""]

    def card_summary(self) -> str:
        raise NotImplementedError

    def card_details(self) -> list[str]:
        """Lines between the modality table and the usage example (each block ends with "")."""
        return []

    def card_usage(self) -> list[str]:
        raise NotImplementedError


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
