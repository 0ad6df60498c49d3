"""`plait.describe` and `plait.label`: a large vision-language model describes pictures or
labels a table, locally or through an OpenAI-compatible server (CLI twins in
`plait.vlm_cli`).

    plait.describe(["a.png", "b.png"], model="llava-hf/llava-interleave-qwen-0.5b-hf")
    plait.label("test.csv", ["cat", "dog"], model="gpt-4o-mini", provider="openai",
                base_url="https://api.openai.com/v1", compare="runs/clip/model")

`model` is a model name with `**options` for `plait.config.VlmConfig` (provider,
base_url, api_key_env, device, dtype, batch_size, cache, cache_dir, ...), a `VlmConfig`,
or a ready `VlmBackend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plait.config import VlmConfig
from plait.data.manifest import Table, id_text, read_table
from plait.errors import DataError, PlaitError, RowProblem
from plait.vlm.base import VlmBackend

#: the column `describe` reads from a table when none is named
DEFAULT_COLUMN = "image"


def as_backend(model: str | VlmConfig | VlmBackend, **options: Any) -> VlmBackend:
    """A ready backend from a name + options, a config, or a backend (returned as is)."""
    from plait.vlm.backends import make_backend, vlm_config

    if isinstance(model, VlmBackend):
        return model
    config = model if isinstance(model, VlmConfig) else vlm_config(model=model, **options)
    return make_backend(config)


def files_table(files: Sequence[str | Path], column: str = DEFAULT_COLUMN) -> Table:
    """A table of file paths (as given, relative to the working folder)."""
    if not files:
        raise DataError("no files given to describe")
    return Table(pd.DataFrame({column: [str(f) for f in files]}), Path.cwd(), "<files>")


def describe(
    data: Sequence[str | Path] | str | Path | pd.DataFrame,
    *,
    model: str | VlmConfig | VlmBackend,
    column: str | None = None,
    template: str | None = None,
    prompt: str | None = None,
    max_new_tokens: int = 128,
    id_column: str | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    **options: Any,
) -> pd.DataFrame:
    """One description per file (a list of paths) or per row of a table's `column`.

    Returns `id` (the file as given, or `id_column`), `description`, and `error` when a
    row could not be sent (its description is then empty). `template` names a prompt of
    `plait.vlm.prompts.TEMPLATES`; `prompt` is your own text (`@FILE` reads it).
    `out` writes the frame (CSV, Parquet or JSONL, by suffix).
    """
    from plait.vlm.prompts import template_text
    from plait.vlm.tables import answer_rows, row_requests

    text = template_text(template, prompt=prompt)
    check_out(out)
    table = _as_table(data, column)
    column = column or DEFAULT_COLUMN
    requests, problems = row_requests(table, column, text, max_new_tokens=max_new_tokens)
    answers = answer_rows(as_backend(model, **options), requests, progress=progress)
    frame = pd.DataFrame(
        {"id": _ids(table, column, id_column), "description": [a or "" for a in answers]}
    )
    _add_errors(frame, problems)
    if out is not None:
        write_frame(frame, out)
    return frame


@dataclass
class LabelResult:
    """Predictions (`id`, `prediction`, `label` and `correct` when labels are present,
    `error`), and when labels are present the metrics (accuracy, macro F1, per class,
    `confusion` rows true / columns predicted) and, with `compare`, the CLIP-style
    zero-shot metrics of the aligned model on the same rows."""

    predictions: pd.DataFrame
    metrics: dict[str, Any] | None
    compare_metrics: dict[str, Any] | None = None

    def confusion(self) -> pd.DataFrame | None:
        """The confusion table as a frame (rows: true class, columns: predicted)."""
        if not self.metrics:
            return None
        names = self.metrics["classes"]
        return pd.DataFrame(self.metrics["confusion"], index=names, columns=names)


def label(
    data: str | Path | pd.DataFrame,
    classes: Sequence[str],
    *,
    model: str | VlmConfig | VlmBackend,
    column: str = DEFAULT_COLUMN,
    label_column: str | None = "label",
    template: str | None = None,
    prompt: str | None = None,
    id_column: str | None = None,
    compare: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    **options: Any,
) -> LabelResult:
    """Zero-shot labels for each row's picture (or sound), always one of `classes`.

    The hub backend scores each class's likelihood; the OpenAI-compatible one asks for
    one class and maps the reply onto the list (`plait.vlm.choices`: a reply naming
    none is `<no choice>`, counted wrong). When `label_column` is in the table, metrics
    come back too; `compare` names a saved aligned model whose own zero-shot
    (`plait.zeroshot`) runs on the same table for a side-by-side.
    """
    from plait.vlm.prompts import template_text
    from plait.vlm.tables import answer_rows, row_requests

    names = _checked_classes(classes)
    text = template_text(template or "label", prompt=prompt)
    check_out(out)
    table = read_table(data)
    requests, problems = row_requests(table, column, text, classes=names, max_new_tokens=32)
    answers = answer_rows(as_backend(model, **options), requests, progress=progress)
    frame = pd.DataFrame(
        {"id": _ids(table, column, id_column), "prediction": [a or "" for a in answers]}
    )
    metrics = None
    if label_column and label_column in table.frame.columns:
        truth = [id_text(v) for v in table.frame[label_column]]
        frame["label"] = truth
        frame["correct"] = [a is not None and a == t for a, t in zip(answers, truth, strict=True)]
        metrics = label_metrics(answers, truth, names)
    _add_errors(frame, problems)
    compared = None
    if compare is not None:
        from plait.api import zeroshot

        label_arg = label_column if metrics is not None else None
        compared = zeroshot(compare, data, names, label=label_arg).metrics
    if out is not None:
        write_frame(frame, out)
    return LabelResult(frame, metrics, compared)


def label_metrics(
    answers: Sequence[str | None], truth: Sequence[str], classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro F1, per class and confusion over the answered rows whose label is
    one of `classes`; a reply naming no class is its own column (always wrong)."""
    from plait.evaluation.retrieval import zeroshot_metrics
    from plait.vlm.choices import NO_CHOICE

    rows = [i for i, (a, t) in enumerate(zip(answers, truth, strict=True)) if a is not None]
    known = [i for i in rows if truth[i] in classes]
    if not known:
        raise PlaitError(
            f"none of the labels (first: {truth[0]!r}) is one of the classes "
            f"({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}); check --classes"
        )
    names = list(classes)
    if any(answers[i] not in classes for i in known):
        names.append(NO_CHOICE)
    scores = np.zeros((len(known), len(names)))  # [N, K] one-hot predictions
    for row, i in enumerate(known):
        answer = answers[i]
        picked = answer if isinstance(answer, str) and answer in classes else NO_CHOICE
        scores[row, names.index(picked)] = 1.0
    metrics = zeroshot_metrics(scores, [names.index(truth[i]) for i in known], names)
    metrics["unknown_labels"] = len(rows) - len(known)
    metrics["skipped_rows"] = len(answers) - len(rows)
    return metrics


def _checked_classes(classes: Sequence[str]) -> list[str]:
    names = [str(c).strip() for c in classes if str(c).strip()]
    if len(names) < 2:
        raise PlaitError("labelling needs at least two class names (--classes a,b,c)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise PlaitError(f"class names given twice: {', '.join(repeated)}")
    return names


def _as_table(data: Sequence[str | Path] | str | Path | pd.DataFrame, column: str | None) -> Table:
    """A table read from a manifest / DataFrame, or built from a list of files."""
    if isinstance(data, pd.DataFrame):
        return read_table(data)
    if isinstance(data, str | Path):
        data = [data]
    paths = list(data)
    if len(paths) == 1 and Path(paths[0]).suffix.lower() in (".csv", ".tsv", ".parquet", ".jsonl"):
        return read_table(paths[0])
    if column is not None:
        raise PlaitError("--column is for a table; files are described one by one")
    return files_table(paths)


def _ids(table: Table, column: str, id_column: str | None) -> list[str]:
    if id_column is None:
        return [id_text(v) for v in table.frame[column]]
    if id_column not in table.frame.columns:
        raise DataError(f"{table.name}: no id column '{id_column}'")
    return [id_text(v) for v in table.frame[id_column]]


def _add_errors(frame: pd.DataFrame, problems: Sequence[RowProblem]) -> None:
    """An `error` column (only when some row failed) saying why, by 1-based row number."""
    if problems:
        errors = [""] * len(frame)
        for problem in problems:
            errors[problem.row - 1] = problem.reason
        frame["error"] = errors


OUT_SUFFIXES = (".csv", ".parquet", ".jsonl", ".ndjson")


def check_out(out: str | Path | None) -> None:
    """Refuse an output format Plait cannot write before the model is asked anything."""
    if out is not None and Path(out).suffix.lower() not in OUT_SUFFIXES:
        raise PlaitError(f"--out {out}: write .csv, .parquet or .jsonl")


def write_frame(frame: pd.DataFrame, out: str | Path) -> None:
    """CSV, Parquet or JSONL by suffix, written atomically."""
    from plait.utils.io import atomic_write

    check_out(out)
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    elif suffix in (".jsonl", ".ndjson"):
        atomic_write(
            path, lambda tmp: frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        )
    else:
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
