"""The model work of each endpoint, run in the service's worker thread.

Each function takes checked rows (`CheckedRow`: cells pointing at checked uploads) and
returns one `Outcome` per row, through the predictor's public calls (`predict`,
`plait.evaluation.attribution`, `embed_rows`, `zeroshot`, `caption`), so a served answer is the
same as `plait.load(folder).predict(table)`. Rows refused by the upload checks pass
through with their error; rows the processors cannot read get theirs from the
predictor's bad-rows report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from plait.errors import DataError
from plait.serve.errors import RowError
from plait.serve.uploads import CheckedRow

if TYPE_CHECKING:
    from plait.alignment.predictor import AlignedPredictor
    from plait.predictor import Predictor

ID_COLUMN = "_serve_row"


@dataclass
class Outcome:
    """One row's result (JSON-ready fields) or why it has none."""

    fields: dict[str, Any] | None = None
    error: RowError | None = None


def unreadable(reason: str) -> RowError:
    return RowError(422, "unreadable_input", reason)


def table_of(predictor: Any, rows: list[CheckedRow]) -> pd.DataFrame:
    """A table with one row per `rows` item, in the columns the model was trained on."""
    config = predictor.config
    names = list(predictor.pair) if hasattr(predictor, "pair") else list(config.modalities)
    if getattr(predictor, "task", None) == "captioning":
        names = [predictor.source]
    columns: dict[str, list[Any]] = {
        config.modalities[n].column: [r.values.get(n) for r in rows] for n in names
    }
    frame = pd.DataFrame(columns, dtype=object)
    if config.data.id:
        frame[config.data.id] = [f"r{i}" for i in range(len(rows))]
    return frame


def split(outcomes: list[Outcome], requests: list[list[CheckedRow]]) -> list[list[Outcome]]:
    out, start = [], 0
    for rows in requests:
        out.append(outcomes[start : start + len(rows)])
        start += len(rows)
    return out


def _run_good(rows: list[CheckedRow], work: Any) -> list[Outcome]:
    """`work(good_rows) -> outcomes` over the rows that passed the upload checks; the
    refused rows keep their error. A table whose every row is unusable raises a
    DataError listing each row's problem: those become the rows' errors."""
    outcomes = [Outcome(error=r.error) for r in rows]
    good = [i for i, r in enumerate(rows) if r.error is None]
    if not good:
        return outcomes
    try:
        done = work([rows[i] for i in good])
    except DataError as exc:
        if not exc.problems:
            raise
        reasons = {p.row - 1: p.reason for p in exc.problems}  # row numbers are 1-based
        done = [Outcome(error=unreadable(reasons.get(j, str(exc)))) for j in range(len(good))]
    for i, outcome in zip(good, done, strict=True):
        outcomes[i] = outcome
    return outcomes


# ---------------------------------------------------------------------- supervised
def predict_rows(predictor: Predictor, rows: list[CheckedRow]) -> list[Outcome]:
    return _run_good(rows, lambda good: _predict(predictor, good))


def _predict(predictor: Predictor, rows: list[CheckedRow]) -> list[Outcome]:
    frame = predictor.predict(table_of(predictor, rows), batch_size=max(1, len(rows)))
    names = [str(n) for n in predictor.labels.names]
    task = predictor.task
    errors = frame["error"] if "error" in frame.columns else pd.Series([None] * len(frame))
    outcomes = []
    for i in range(len(frame)):
        reason = errors.iloc[i]
        if isinstance(reason, str) and reason:
            outcomes.append(Outcome(error=unreadable(reason)))
            continue
        row = frame.iloc[i]
        if task == "regression":
            prediction: Any = {n: float(row[n]) for n in names}
            probabilities = None
        else:
            probabilities = {n: float(row[f"proba_{n}"]) for n in names}
            if task == "multilabel":
                prediction = [n for n in names if probabilities[n] >= 0.5]
            else:
                prediction = str(row["prediction"])
        outcomes.append(Outcome({"prediction": prediction, "probabilities": probabilities}))
    return outcomes


def predict_batch(predictor: Predictor, requests: list[list[CheckedRow]]) -> list[list[Outcome]]:
    return split(predict_rows(predictor, [r for rows in requests for r in rows]), requests)


def explain_batch(predictor: Predictor, requests: list[list[CheckedRow]]) -> list[list[Outcome]]:
    """Predictions plus each row's Shapley contribution per modality (2^M model calls)."""
    from plait.evaluation.attribution import modality_attribution

    rows = [r for req in requests for r in req]
    outcomes = predict_rows(predictor, rows)
    good = [i for i, o in enumerate(outcomes) if o.error is None]
    if good:
        frame = table_of(predictor, [rows[i] for i in good])
        found = modality_attribution(predictor, frame, batch_size=max(1, len(good)))
        for j, i in enumerate(good):
            row = found.rows.iloc[j]
            fields = outcomes[i].fields
            assert fields is not None
            fields["attribution"] = {m: float(row[f"contribution_{m}"]) for m in found.modalities}
            fields["attribution_target"] = str(row["target"])
            fields["attribution_baseline"] = float(row["baseline"])
    return split(outcomes, requests)


# ------------------------------------------------------------------------- aligned
def embed_rows(predictor: AlignedPredictor, rows: list[CheckedRow]) -> list[Outcome]:
    """Each row's unit vector per aligned modality it has."""
    return _run_good(rows, lambda good: _embed(predictor, good))


def _embed(predictor: AlignedPredictor, rows: list[CheckedRow]) -> list[Outcome]:
    frame = table_of(predictor, rows)
    vectors: list[dict[str, list[float]]] = [{} for _ in rows]
    errors: dict[int, str] = {}
    for name in predictor.pair:
        if not any(name in r.values for r in rows):
            continue
        _, found, positions = predictor.embed_rows(frame, name, batch_size=max(1, len(rows)))
        for vector, position in zip(found, positions, strict=True):
            vectors[int(position)][name] = [float(v) for v in vector]
        report = predictor.last_bad_rows
        if report:
            for number, reason in report.reasons().items():
                errors.setdefault(number - 1, reason)
    return [
        Outcome(error=unreadable(errors[i])) if i in errors else Outcome({"embeddings": v})
        for i, v in enumerate(vectors)
    ]


def embed_batch(
    predictor: AlignedPredictor, requests: list[list[CheckedRow]]
) -> list[list[Outcome]]:
    return split(embed_rows(predictor, [r for rows in requests for r in rows]), requests)


def similarity(
    predictor: AlignedPredictor, query: tuple[str, str], candidates: tuple[str, list[str]]
) -> list[float]:
    """Cosine of one value of a modality to each value of another."""
    (a, value), (b, values) = query, candidates
    left = predictor.embed_values(a, [value])  # [1, D]
    right = predictor.embed_values(b, values)  # [N, D]
    return [float(s) for s in (left @ right.T)[0]]


def zeroshot(predictor: AlignedPredictor, row: CheckedRow, classes: list[str]) -> dict[str, Any]:
    """Class probabilities of one row: a softmax over the cosines to each class prompt,
    scaled by the model's learned inverse temperature (as in training)."""
    text = predictor.text_modality()
    target = next(n for n in predictor.pair if n != text)
    result = predictor.zeroshot(table_of(predictor, [row]), classes, modality=target)
    frame = result.predictions
    if "error" in frame.columns and isinstance(frame["error"].iloc[0], str):
        raise DataError(str(frame["error"].iloc[0]))
    scores = np.array([float(frame[f"score_{c}"].iloc[0]) for c in classes])
    scale = float(predictor.model.logit_scale.detach().exp().clamp(max=100).item())
    logits = scale * scores
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    return {
        "prediction": str(frame["prediction"].iloc[0]),
        "probabilities": {c: float(p) for c, p in zip(classes, probs, strict=True)},
        "scores": {c: float(s) for c, s in zip(classes, scores, strict=True)},
    }


# ---------------------------------------------------------------------- captioning
def caption_rows(predictor: Any, rows: list[CheckedRow], options: Any) -> list[Outcome]:
    """Each row's caption (`CaptioningPredictor.caption`, the request's decoding
    `options`: a `DecodingOptions`)."""
    return _run_good(rows, lambda good: _caption(predictor, good, options))


def _caption(predictor: Any, rows: list[CheckedRow], options: Any) -> list[Outcome]:
    frame = predictor.caption(
        table_of(predictor, rows), batch_size=max(1, len(rows)), progress=False,
        **options.as_dict(),
    )  # fmt: skip
    errors = frame["error"] if "error" in frame.columns else pd.Series([None] * len(frame))
    outcomes = []
    for caption, reason in zip(frame["caption"], errors, strict=True):
        if isinstance(reason, str) and reason:
            outcomes.append(Outcome(error=unreadable(reason)))
        else:
            outcomes.append(Outcome({"caption": str(caption)}))
    return outcomes
