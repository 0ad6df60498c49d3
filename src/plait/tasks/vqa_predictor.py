"""A trained question answerer ready for use: `ask` (rows of a context file and a question
in, `id, answer, probability` out, with the top k when asked) and `evaluate` (accuracy
overall and per question type); loading, batching and saving come from `BasePredictor`.

The answer vocabulary is the model's label space (labels.json). An answer in the data that
the model never saw in training is scored wrong, never refused: the model could not
have given it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from plait.config import PlaitConfig
from plait.data import MultimodalDataset
from plait.data.bad_rows import OnError, with_bad_rows
from plait.data.labels import label_key
from plait.errors import DataError, PlaitError
from plait.heads.vqa.generative import GenerativeAnswerHead
from plait.model_folder import FolderContents
from plait.tasks.predictor import BasePredictor, check_finite_outputs
from plait.tasks.vqa_generate import free_answers
from plait.tasks.vqa_model import VqaModel, build_vqa_model
from plait.utils.progress import progress_bar

EXAMPLES = 12  # answered questions kept with the metrics, for the report


class VqaPredictor(BasePredictor):
    """Context encoder + question encoder + answer head + preprocessing + answers."""

    model: VqaModel

    @property
    def task(self) -> str:
        return "vqa"

    @property
    def context(self) -> str:
        return self.config.vqa_pair[0]

    @property
    def question(self) -> str:
        return self.config.vqa_pair[1]

    @property
    def answers(self) -> list[str]:
        """The answer vocabulary, in the order of the model's outputs."""
        assert self.labels is not None
        return list(self.labels.names)

    # ------------------------------------------------------------------- answering
    @torch.inference_mode()
    def probabilities(
        self, dataset: MultimodalDataset, batch_size: int = 64, progress: bool = False
    ) -> tuple[list[str], np.ndarray]:
        """(ids, answer probabilities [N, A]) of every row of `dataset`, in order."""
        ids: list[str] = []
        parts: list[np.ndarray] = []
        batches = -(-len(dataset) // batch_size)
        with progress_bar(progress, "answering", batches, min_total=2) as advance:
            for batch in self.loader(dataset, batch_size):
                batch = batch.to(self.device)
                logits = self.model(batch.inputs)  # [B, A]
                check_finite_outputs(logits, batch.ids)
                parts.append(logits.float().softmax(-1).cpu().numpy())
                ids += batch.ids
                advance()
        width = len(self.answers)
        return ids, np.concatenate(parts) if parts else np.zeros((0, width), np.float32)

    def ask(
        self,
        rows: Any,
        *,
        top_k: int = 1,
        batch_size: int = 64,
        progress: bool = False,
        on_error: OnError = "skip",
    ) -> pd.DataFrame:
        """The answer to each row's question: a DataFrame `id, answer, probability` (and
        `answer_2, probability_2` ... up to `top_k`), one row per input row, in order.
        With `vqa.answer: generate` the answers are ranked by the decoder's likelihood,
        and `generated` is what it writes freely (greedy).

        `rows`: a table (path or DataFrame) or dicts (one, or a list), each with the
        context file and the question, keyed by their columns or by modality names
        (`{"image": "a.png", "question": "what shape is the red object?"}`). With
        `on_error="skip"` a row that cannot be read keeps its row with an empty answer
        and an `error` column says why; `raise` refuses the call.
        """
        if top_k < 1:
            raise PlaitError(f"top_k must be 1 or more, got {top_k}")
        data = self._table(rows)
        names = [self.context, self.question]
        dataset = self.prepare(data, modalities=names, labels=False, on_error=on_error)
        ids, probs = self.probabilities(dataset, batch_size, progress)
        k = min(top_k, probs.shape[1])
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # [N, k]
        frame = pd.DataFrame({"id": ids})
        for rank in range(k):
            suffix = "" if rank == 0 else f"_{rank + 1}"
            picked = order[:, rank] if len(ids) else np.zeros(0, dtype=np.int64)
            frame[f"answer{suffix}"] = [self.answers[int(i)] for i in picked]
            frame[f"probability{suffix}"] = probs[np.arange(len(ids)), picked].astype(float)
        if isinstance(self.model.head, GenerativeAnswerHead):  # vqa.answer: generate
            frame["generated"] = free_answers(
                self.model, self.loader(dataset, batch_size), self.device
            )
        if dataset is data:
            return frame
        return with_bad_rows(frame, dataset.rows, self.last_bad_rows)

    def _table(self, rows: Any) -> Any:
        """Dicts -> a DataFrame with the model's column names; tables pass through. A
        DataFrame without the id column (`data.id`) is numbered from 1."""
        if isinstance(rows, Mapping):
            rows = [rows]
        if isinstance(rows, pd.DataFrame):
            return self._with_ids(rows)
        if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
            return rows
        columns = {name: self.config.modalities[name].column for name in self.config.modalities}
        renamed = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise PlaitError(f"row {i + 1}: expected a dict of column -> value, got {row!r}")
            renamed.append({_column_name(str(k), columns): v for k, v in row.items()})
        return self._with_ids(pd.DataFrame(renamed))

    def _with_ids(self, frame: pd.DataFrame) -> pd.DataFrame:
        column = self.config.data.id
        if column is None or column in frame.columns:
            return frame
        return frame.assign(**{column: [str(i + 1) for i in range(len(frame))]})

    # ----------------------------------------------------------------- evaluation
    def evaluate(
        self,
        data: Any,
        batch_size: int = 64,
        *,
        on_error: OnError = "raise",
        progress: bool = False,
    ) -> dict[str, Any]:
        """Accuracy of the rows that have an answer (`data.label`), overall and per value
        of each `vqa.type_columns` column (`per_type`, and flat `accuracy_<value>`), with
        `n`, `unseen_answers` (answers not in the vocabulary: scored wrong) and a few
        examples for the report."""
        names = [self.context, self.question]
        dataset = self.prepare(data, modalities=names, labels=False, on_error=on_error)
        answer_column = self.config.label_columns[0]
        truth = self._column(dataset, answer_column)
        ids, probs = self.probabilities(dataset, batch_size, progress)
        predicted = [self.answers[int(i)] for i in probs.argmax(1)] if len(ids) else []
        keys = [label_key(v) for v in truth]
        scored = [i for i, key in enumerate(keys) if key is not None]
        if not scored:
            raise PlaitError(f"no row has an answer in column {answer_column!r}: nothing to score")
        correct = np.array([keys[i] == predicted[i] for i in scored])
        known = set(self.answers)
        metrics: dict[str, Any] = {
            "n": len(scored),
            "accuracy": float(correct.mean()),
            "unseen_answers": sum(keys[i] not in known for i in scored),
        }
        per_type: dict[str, dict[str, dict[str, float | int]]] = {}
        assert self.config.vqa is not None
        for column in self.config.vqa.type_columns:
            types = self._column(dataset, column)
            groups: dict[str, list[bool]] = {}
            for hit, i in zip(correct, scored, strict=True):
                groups.setdefault(str(label_key(types[i])), []).append(bool(hit))
            per_type[column] = {
                value: {"n": len(hits), "accuracy": float(np.mean(hits))}
                for value, hits in sorted(groups.items())
            }
            for value, row in per_type[column].items():
                metrics[f"accuracy_{_key(value)}"] = row["accuracy"]
        if per_type:
            metrics["per_type"] = per_type
        metrics["examples"] = self._examples(dataset, ids, predicted, truth, scored)
        if dataset is not data and self.last_bad_rows is not None:
            metrics["skipped_rows"] = len(self.last_bad_rows.rows)
        return metrics

    def _column(self, dataset: MultimodalDataset, column: str) -> list[Any]:
        """The raw cells of `column` for the dataset's rows (a DataError when missing)."""
        frame = dataset.table.frame
        if column not in frame.columns:
            have = ", ".join(map(str, frame.columns))
            raise DataError(f"{dataset.table.name}: no column {column!r} (columns: {have})")
        return list(frame[column].iloc[dataset.rows])

    def _examples(
        self, dataset: MultimodalDataset, ids: list[str], predicted: list[str],
        truth: list[Any], scored: list[int],
    ) -> list[dict[str, Any]]:  # fmt: skip
        """The first scored rows: context file, question, answer given and expected."""
        files = self._column(dataset, self.config.modalities[self.context].column)
        questions = self._column(dataset, self.config.modalities[self.question].column)
        out = []
        for i in scored[:EXAMPLES]:
            path = Path(str(files[i]))
            if not path.is_absolute():
                path = dataset.table.base_dir / path
            out.append({"id": ids[i], "file": str(path), "question": str(questions[i]),
                        "answer": predicted[i], "expected": str(label_key(truth[i])),
                        "kind": self.config.modalities[self.context].kind})  # fmt: skip
        return out

    # ------------------------------------------------------------------ save / load
    @classmethod
    def build_model(cls, config: PlaitConfig, found: FolderContents, folder: Path) -> VqaModel:
        if config.vqa is None:
            raise PlaitError(f"{folder}: config.yaml has no `vqa:` block")
        return build_vqa_model(config, found.processors, found.labels, load_weights=False)

    def card_summary(self) -> str:
        assert self.config.vqa is not None
        return (
            f"Plait question answerer: `{self.context}` and the question `{self.question}` "
            f"in, one of {len(self.answers)} answers out (head `{self.config.vqa.head}`)."
        )

    def card_usage(self) -> list[str]:
        column = self.config.modalities[self.context].column
        question = self.config.modalities[self.question].column
        return [f'model.ask({{"{column}": "a.png", "{question}": "what shape is it?"}})'
                "  # id, answer, probability"]  # fmt: skip


def _column_name(key: str, columns: dict[str, str]) -> str:
    """A dict key -> the table column: a column as it is, a modality name as its column."""
    return key if key in columns.values() else columns.get(key, key)


def _key(value: str) -> str:
    """A type value as a metric name: `non-relational` -> `non_relational`."""
    return re.sub(r"\W+", "_", value).strip("_").lower() or "blank"
