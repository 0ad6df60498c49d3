"""A trained aligned model ready for use: embed, similarity, zero-shot, evaluate; loading,
batching and saving come from `BasePredictor`.

Inference never builds a trainer. Each public call follows preprocess -> embed ->
postprocess: rows or raw values become tensors through the fitted processors, the
towers embed them into the shared space (unit vectors), and scores are dot products.

A saved aligned model is a folder like a supervised one (config.yaml with its
`alignment:` block, model.safetensors, processors/, hub/, metrics.json; labels.json only
when the run had a label column). A pretrained dual encoder also keeps its full hub
config in `hub/_dual/`, so its projections are rebuilt offline.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from plait.alignment.build import build_aligned_model, shared_dual_checkpoint
from plait.alignment.model import AlignedModel
from plait.config import PlaitConfig
from plait.data import LabelSpace, MultimodalDataset
from plait.data.arrays import is_array_cell
from plait.data.bad_rows import BadRows, OnError
from plait.data.batch import Batch
from plait.data.manifest import Table
from plait.data.prepare import row_ids
from plait.errors import PlaitError
from plait.model_folder import FolderContents
from plait.tasks.predictor import BasePredictor, check_finite_outputs
from plait.utils.progress import progress_bar

DUAL_FOLDER = "_dual"


@dataclass
class ZeroShotResult:
    """Predictions (`id`, `prediction`, one `score_<class>` per class) and, when the data
    had labels, the metrics (accuracy, macro F1, per class, confusion)."""

    predictions: pd.DataFrame
    metrics: dict[str, Any] | None


class AlignedPredictor(BasePredictor):
    """Aligned towers + preprocessing. Build with `plait.load(folder)` or from a run."""

    model: AlignedModel

    def __init__(
        self,
        model: AlignedModel,
        config: PlaitConfig,
        processors: dict[str, Any],
        labels: LabelSpace | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, config, processors, labels, metrics)
        self._dim: int | None = None

    @property
    def task(self) -> str:
        return "alignment"

    @property
    def pair(self) -> tuple[str, str]:
        return self.model.pair

    def modality(self, name_or_kind: str) -> str:
        """A modality name from its name or kind (`image` finds the image modality)."""
        if name_or_kind in self.pair:
            return name_or_kind
        found = [n for n in self.pair if self.config.modalities[n].kind == name_or_kind]
        if len(found) == 1:
            return found[0]
        kinds = ", ".join(f"{n} ({self.config.modalities[n].kind})" for n in self.pair)
        raise PlaitError(f"this model aligns {kinds}; it has no `{name_or_kind}` tower")

    def text_modality(self) -> str:
        for name in self.pair:
            if self.config.modalities[name].kind == "text":
                return name
        raise PlaitError(
            f"this model aligns {' and '.join(self.pair)}: zero-shot prompts need a text tower"
        )

    # -------------------------------------------------------------- tables of rows
    def _dataset(
        self, data: Any, names: Sequence[str], labels: bool, on_error: OnError = "raise"
    ) -> MultimodalDataset:
        """The good rows of `data` for the modalities `names` (only their columns are
        read and checked); the problems go to `last_problems` / `last_bad_rows`."""
        return self.prepare(
            data, modalities=names, labels=labels, require_labels=labels, on_error=on_error
        )

    def _batches(self, dataset: MultimodalDataset, batch_size: int) -> Iterator[Batch]:
        for batch in self.loader(dataset, batch_size):
            yield batch.to(self.device)

    def embed(
        self,
        data: Any,
        modality: str,
        *,
        batch_size: int = 64,
        progress: bool = False,
        on_error: OnError = "skip",
    ) -> tuple[list[str], np.ndarray]:
        """Embed one modality of every row that has it: (ids, [N, D] float32 unit vectors).

        `data`: a manifest path, a DataFrame or a prepared dataset; rows where the
        modality is missing are skipped (the ids say which rows were embedded).

        A vector cannot be empty, so with `on_error="skip"` (the default) a row whose
        file cannot be read is left out too and listed in `last_bad_rows`: one bad file
        does not stop embedding a large collection, and the caller lists what is missing
        (`plait embed` writes `<out stem>.bad_rows.csv` and exits 3). `raise` refuses instead.
        """
        ids, vectors, _ = self.embed_rows(
            data, modality, batch_size=batch_size, progress=progress, on_error=on_error
        )
        return ids, vectors

    def embed_rows(
        self,
        data: Any,
        modality: str,
        *,
        batch_size: int = 64,
        progress: bool = False,
        on_error: OnError = "skip",
    ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """As `embed`, plus the 0-based table position of each embedded row (to join the
        source table's other columns back without relying on ids being unique)."""
        name = self.modality(modality)
        dataset = self._dataset(data, [name], labels=False, on_error=on_error)
        ids, vectors, positions = self._embed_dataset(dataset, name, batch_size, progress)
        return ids, vectors, dataset.rows[positions]

    @torch.inference_mode()
    def _embed_dataset(
        self, dataset: MultimodalDataset, name: str, batch_size: int, progress: bool
    ) -> tuple[list[str], np.ndarray, list[int]]:
        """(ids, vectors, dataset positions) of the samples where `name` is present."""
        ids: list[str] = []
        positions: list[int] = []
        parts: list[np.ndarray] = []
        start = 0
        with progress_bar(progress, f"embedding {name}", len(dataset)) as advance:
            for batch in self._batches(dataset, batch_size):
                rows = batch.presence[name].bool().nonzero().squeeze(1)
                if len(rows):
                    inputs = {k: v[rows] for k, v in batch.inputs[name].items()}
                    vectors = self.model.embed(name, inputs)  # [n, D]
                    check_finite_outputs(vectors, [batch.ids[i] for i in rows.tolist()])
                    parts.append(vectors.float().cpu().numpy())
                    ids.extend(batch.ids[i] for i in rows.tolist())
                    positions.extend(start + i for i in rows.tolist())
                start += len(batch)
                advance(len(batch))
        return ids, _stack(parts, self.dim), positions

    @property
    def dim(self) -> int:
        """Width of the shared embedding space (found once by embedding a placeholder)."""
        if self._dim is None:
            name = self.pair[0]
            sample = self.processors[name].placeholder()
            inputs = {k: v.unsqueeze(0).to(self.device) for k, v in sample.items()}
            with torch.inference_mode():
                self._dim = int(self.model.embed(name, inputs).shape[-1])
        return self._dim

    # ---------------------------------------------------------------- raw values
    @torch.inference_mode()
    def embed_values(
        self, modality: str, values: Sequence[Any], *, base_dir: str | Path = "."
    ) -> np.ndarray:
        """Embed raw values (texts, file paths, arrays) of one modality: [N, D].

        Raises:
            PlaitError: an empty text, a missing or unreadable file, naming the value.
        """
        name = self.modality(modality)
        processor = self.processors[name]
        kind = self.config.modalities[name].kind
        if isinstance(values, str | Path) or not isinstance(values, Sequence):
            values = [values]
        if len(values) == 0:
            raise PlaitError(f"no {kind} values to embed")
        samples = []
        for value in values:
            if isinstance(value, Path) and is_array_cell(str(value)):
                value = str(value)  # `file.npy#4` given as a path (the CLI's --image)
            if processor.is_missing(value):
                raise PlaitError(f"empty {kind} query: give a non-empty {kind} value")
            try:
                raw = processor.load(value, Path(base_dir))
            except (OSError, ValueError) as exc:
                raise PlaitError(f"{kind} query {_short(value)}: {exc}") from None
            samples.append(processor.transform(raw, False, torch.Generator().manual_seed(0)))
        inputs = {k: v.to(self.device) for k, v in processor.collate(samples).items()}
        return self.model.embed(name, inputs).float().cpu().numpy()  # [N, D]

    def similarity(self, **values: Any) -> pd.DataFrame:
        """Cosine similarity of every value of one modality to every value of the other.

        `model.similarity(image=["a.png", "b.png"], text=["a dog", "a cat"])` -> a
        [2 x 2] DataFrame, rows the first keyword's values, columns the second's.
        """
        if len(values) != 2:
            raise PlaitError(
                f"similarity needs exactly two modalities, e.g. image=[...], text=[...]; "
                f"got {', '.join(values) or 'none'}"
            )
        (first, a), (second, b) = values.items()
        a_list, b_list = _as_list(a), _as_list(b)
        left = self.embed_values(first, a_list)
        right = self.embed_values(second, b_list)
        scores = left @ right.T  # [Na, Nb]
        return pd.DataFrame(
            scores, index=[_short(v) for v in a_list], columns=[_short(v) for v in b_list]
        )

    # ------------------------------------------------------------------ zero-shot
    def class_embeddings(self, classes: Sequence[str], templates: Sequence[str]) -> np.ndarray:
        """One text embedding per class: the normalised mean over prompt templates [K, D]."""
        if not classes:
            raise PlaitError("zero-shot needs at least two class names")
        for template in templates:
            if "{}" not in template:
                raise PlaitError(f"prompt template {template!r} has no `{{}}` for the class")
        text = self.text_modality()
        prompts = [t.format(c) for c in classes for t in templates]
        vectors = self.embed_values(text, prompts).reshape(len(classes), len(templates), -1)
        mean = vectors.mean(1)  # [K, D]
        return mean / np.linalg.norm(mean, axis=1, keepdims=True).clip(1e-12)

    def zeroshot(
        self,
        data: Any,
        classes: Sequence[str] | None = None,
        *,
        templates: Sequence[str] | None = None,
        modality: str | None = None,
        label: str | None = None,
        batch_size: int = 64,
        progress: bool = False,
        on_error: OnError = "skip",
    ) -> ZeroShotResult:
        """Classify the rows of `data` by their nearest class prompt.

        The predictions have one row per input row, in input order, like `predict`'s: a
        row that cannot be classified (its file cannot be read, or its cell is empty) has
        an empty prediction and an `error` column (present only then) saying why. Metrics
        cover the classified rows; `metrics["skipped_rows"]` counts the unreadable ones,
        listed in `last_bad_rows`.

        Args:
            classes: class names (default: `alignment.classes`, else the training labels).
            templates: prompt templates such as "a photo of a {}" (default: the config's).
            modality: the modality to classify (default: the non-text one).
            label: a column of true class names; default `data.label` when `data` has it.
            on_error: `skip` (default: predictions are the main output, as for
                `predict`; the skipped rows are listed) or `raise` (refuse the table).
        """
        alignment = self.config.alignment
        assert alignment is not None
        names = list(classes or alignment.classes or (self.labels.names if self.labels else []))
        if len(names) < 2:
            raise PlaitError("zero-shot needs at least two class names (pass --classes)")
        text = self.text_modality()
        target = self.modality(modality) if modality else next(n for n in self.pair if n != text)
        prompts = self.class_embeddings(names, list(templates or alignment.templates))
        from_table = not isinstance(data, MultimodalDataset)
        dataset = self._dataset(data, [target], labels=False, on_error=on_error)
        ids, vectors, positions = self._embed_dataset(dataset, target, batch_size, progress)
        scores = vectors @ prompts.T  # [N, K]
        frame = _prediction_frame(ids, names, scores)
        classified = dataset.rows[positions]  # 0-based table positions, in order
        inputs = np.arange(len(dataset.table)) if from_table else dataset.rows
        truth = self._truth(dataset.table, label, classified) if from_table else None
        metrics = None
        if truth is not None:
            from plait.evaluation.retrieval import zeroshot_metrics

            known = [i for i, t in enumerate(truth) if t in names]
            if not known:
                shown = ", ".join(map(repr, names[:5])) + (", ..." if len(names) > 5 else "")
                raise PlaitError(
                    f"none of the true labels (first: {truth[0]!r}) are among the "
                    f"{len(names)} classes ({shown}); check --classes against the label column"
                )
            metrics = zeroshot_metrics(scores[known], [names.index(truth[i]) for i in known], names)
            metrics["unknown_labels"] = len(truth) - len(known)
            frame["label"] = truth
        report = self.last_bad_rows if from_table else None
        if metrics is not None and from_table:
            metrics["skipped_rows"] = len(report.rows) if report else 0
        frame = self._every_row(frame, dataset, classified, inputs, target, report, label)
        return ZeroShotResult(frame, metrics)

    def _every_row(
        self,
        frame: pd.DataFrame,
        dataset: MultimodalDataset,
        classified: np.ndarray,
        inputs: np.ndarray,
        target: str,
        report: BadRows | None,
        label: str | None,
    ) -> pd.DataFrame:
        """One row per input row (0-based table positions `inputs`): the rows of `frame`
        (table positions `classified`) in place, the others with an empty prediction and
        an `error` saying why (the row's problem, or its empty cell)."""
        if len(classified) == len(inputs):
            return frame
        table = dataset.table
        full = frame.set_axis(classified).reindex(inputs)
        full["id"] = (
            row_ids(table, self.config, inputs) if report is not None else list(dataset.ids)
        )
        if "label" in full.columns:
            full["label"] = self._truth(table, label, inputs)
        reasons = report.reasons() if report is not None else {}
        column = self.config.modalities[target].column
        empty = f"no {target} to classify: the '{column}' cell is empty"
        done = set(classified.tolist())
        full["error"] = [
            None if pos in done else reasons.get(Table.row_number(pos), empty)
            for pos in inputs.tolist()
        ]
        return full.reset_index(drop=True)

    def _truth(self, table: Table, label: str | None, rows: np.ndarray) -> list[str] | None:
        """True class names of the 0-based table positions `rows`, read from the label
        column (`label`, else the config's `data.label`) when the table has it."""
        column = label or (
            self.config.data.label if isinstance(self.config.data.label, str) else None
        )
        if column is None:
            return None
        frame = table.frame
        if column not in frame.columns:
            if label:
                raise PlaitError(f"{table.name}: no column `{label}` (the --label column)")
            return None
        return [str(v) for v in frame[column].iloc[rows].tolist()]

    # ------------------------------------------------------------------ evaluation
    @torch.inference_mode()
    def evaluate(
        self, data: Any, batch_size: int = 64, *, on_error: OnError = "raise"
    ) -> dict[str, Any]:
        """Retrieval in both directions over rows with both modalities (and zero-shot
        accuracy through the text tower when the data has class labels).

        `on_error="raise"` (the default) refuses a table with bad rows: metrics on a
        silently smaller set would mislead. With `skip` they cover the good rows and
        `skipped_rows` says how many were left out (listed in `last_bad_rows`)."""
        from plait.evaluation.retrieval import cross_modal_retrieval, zeroshot_metrics

        alignment = self.config.alignment
        assert alignment is not None
        a, b = self.pair
        if not isinstance(data, MultimodalDataset):
            from plait.data.manifest import read_table

            data = read_table(data)  # once: the label check and the dataset share it
        use_labels = self.labels is not None and (
            isinstance(data, MultimodalDataset)
            or all(c in data.frame.columns for c in self.config.label_columns)
        )
        from_table = not isinstance(data, MultimodalDataset)
        dataset = self._dataset(data, [a, b], labels=use_labels, on_error=on_error)
        za: list[np.ndarray] = []
        zb: list[np.ndarray] = []
        keys: list[str] = []
        classes: list[int] = []
        for batch in self._batches(dataset, batch_size):
            rows = (batch.presence[a].bool() & batch.presence[b].bool()).nonzero().squeeze(1)
            if not len(rows):
                continue
            za.append(self.model.embed(a, _rows(batch.inputs[a], rows)).float().cpu().numpy())
            zb.append(self.model.embed(b, _rows(batch.inputs[b], rows)).float().cpu().numpy())
            keys.extend(batch.ids[i] for i in rows.tolist())
            if batch.labels is not None:
                classes.extend(batch.labels[rows].cpu().tolist())
        if not keys:
            raise PlaitError("no rows with both aligned modalities to evaluate on")
        relevance = alignment.relevance if classes else "pair"
        emb = {a: _stack(za, self.dim), b: _stack(zb, self.dim)}
        metrics: dict[str, Any] = {
            "relevance": relevance,
            "pairs": len(keys),
            "retrieval": cross_modal_retrieval(emb, classes if relevance == "label" else keys),
        }
        kinds = {self.config.modalities[n].kind for n in (a, b)}
        if classes and "text" in kinds and self.labels is not None:
            text = self.text_modality()
            other = b if text == a else a
            prompts = self.class_embeddings(self.labels.names, alignment.templates)
            metrics["zeroshot"] = {
                other: zeroshot_metrics(emb[other] @ prompts.T, classes, self.labels.names)
            }
        if from_table and self.last_bad_rows is not None:
            metrics["skipped_rows"] = len(self.last_bad_rows.rows)
        return metrics

    # ------------------------------------------------------------------ save / load
    def save_extra(self, staging: Path) -> None:
        """A pretrained dual encoder's full hub config, in `hub/_dual/`."""
        checkpoint = shared_dual_checkpoint(self.config)
        if checkpoint is not None:
            from transformers import AutoConfig

            AutoConfig.from_pretrained(checkpoint).save_pretrained(
                str(staging / "hub" / DUAL_FOLDER)
            )

    @classmethod
    def loaded_config(cls, config: PlaitConfig, folder: Path) -> PlaitConfig:
        dual = folder / "hub" / DUAL_FOLDER
        if dual.is_dir():  # both towers and the projections rebuild from the full config
            return _point_pair_at(config, str(dual))
        return config

    @classmethod
    def build_model(cls, config: PlaitConfig, found: FolderContents, folder: Path) -> AlignedModel:
        return build_aligned_model(config, found.processors, load_weights=False)

    def card_modality_names(self) -> list[str]:
        return list(self.pair)

    def card_summary(self) -> str:
        assert self.config.alignment is not None
        objectives = ", ".join(f"{o.name} x{o.weight:g}" for o in self.config.alignment.objectives)
        return f"Plait aligned model: {' <-> '.join(self.pair)}, objectives {objectives}."

    def card_usage(self) -> list[str]:
        return [
            'ids, vectors = model.embed("items.csv", "image")',
            'model.similarity(image=["cat.png"], text=["a cat", "a dog"])',
        ]


def _prediction_frame(ids: list[str], names: list[str], scores: np.ndarray) -> pd.DataFrame:
    """`id`, `prediction`, then one `score_<class>` column per class, built in one go:
    inserting hundreds of class columns one by one fragments the frame and makes pandas
    warn once per column."""
    columns: dict[str, Any] = {
        "id": ids,
        "prediction": [names[i] for i in scores.argmax(1)] if len(ids) else [],
    }
    columns.update({f"score_{name}": scores[:, j] for j, name in enumerate(names)})
    return pd.DataFrame(columns)


def _point_pair_at(config: PlaitConfig, path: str) -> PlaitConfig:
    modalities = dict(config.modalities)
    for name in config.aligned_pair:
        modality = modalities[name]
        encoder = modality.encoder.model_copy(update={"model": path})
        modalities[name] = modality.model_copy(update={"encoder": encoder})
    return config.model_copy(update={"modalities": modalities})


def _rows(inputs: Mapping[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
    return {k: v[rows] for k, v in inputs.items()}


def _stack(parts: list[np.ndarray], dim: int) -> np.ndarray:
    if parts:
        return np.concatenate(parts).astype(np.float32, copy=False)
    return np.zeros((0, max(dim, 0)), np.float32)


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, str | Path | np.ndarray) or not isinstance(values, Sequence):
        return [values]
    return list(values)


def _short(value: Any, width: int = 60) -> str:
    if isinstance(value, np.ndarray):
        return f"<array {tuple(value.shape)}>"
    text = str(value)
    if len(text) > width:  # keep both ends: a text's start, a long path's file name
        head = (width - 1) // 3
        text = text[:head] + "…" + text[len(text) - (width - 1 - head) :]
    return repr(text)
