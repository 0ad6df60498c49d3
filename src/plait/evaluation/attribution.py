"""Modality attribution: how much each modality contributed to each prediction.

Exact Shapley values over modalities. A "player" is a modality; a coalition S is run by
marking every modality outside S missing, through the same presence mask that training
and prediction use for an empty cell, so the model sees exactly what it would see if the
user had left those cells blank. The value of a coalition for one row is the model's
output for that row's target:

- classification: the probability of the target class (by default the class predicted
  from all modalities; `target="label"` takes the true class);
- multilabel: the probability of the label scored highest from all modalities;
- regression: the first predicted value, in the label's own units.

With M modalities this costs 2^M forward passes per batch (8 for text + image + audio),
no sampling, and the values add up exactly: for every row the contributions sum to the
full-input output minus the all-missing output (the "efficiency" of Shapley values). A
modality a row lacks contributes exactly 0 to that row.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch

from plait.errors import PlaitError
from plait.heads.activation import activate

if TYPE_CHECKING:
    from plait.predictor import Predictor

MAX_MODALITIES = 10  # 1,024 forward passes per batch; beyond that exact Shapley is too slow
Target = Literal["predicted", "label"]


@dataclass
class Attribution:
    """Per-row contributions (`rows`) and their per-modality summary (`summary`)."""

    rows: pd.DataFrame
    summary: pd.DataFrame
    modalities: list[str]


def shapley_values(values: dict[frozenset[str], np.ndarray], players: Sequence[str]) -> np.ndarray:
    """Exact Shapley values [N, len(players)] from the value of every coalition ([N] each).

    `values` must hold all 2^len(players) coalitions, the empty one included.
    """
    n = len(players)
    out = np.zeros((len(values[frozenset()]), n), dtype=np.float64)
    for i, player in enumerate(players):
        others = [p for p in players if p != player]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for coalition in itertools.combinations(others, size):
                base = frozenset(coalition)
                out[:, i] += weight * (values[base | {player}] - values[base])
    return out


def modality_attribution(
    predictor: Predictor,
    data: Any,
    *,
    target: Target = "predicted",
    batch_size: int = 64,
) -> Attribution:
    """Shapley contribution of each modality to each row's output (see the module doc).

    `data`: a path, a DataFrame or a prepared dataset, as for `predictor.predict`.
    """
    if target not in ("predicted", "label"):
        raise PlaitError(f"target must be 'predicted' or 'label', got {target!r}")
    if target == "label" and predictor.task != "classification":
        raise PlaitError("target='label' needs a classification model")
    players = list(predictor.model.modalities)
    if len(players) > MAX_MODALITIES:
        raise PlaitError(
            f"exact modality attribution runs 2^M forward passes; {len(players)} "
            f"modalities is more than the {MAX_MODALITIES} it allows"
        )
    coalitions = [
        frozenset(c)
        for size in range(len(players) + 1)
        for c in itertools.combinations(players, size)
    ]
    everyone = frozenset(players)
    device = predictor.device  # an ONNX Runtime model has no parameters to ask
    ids: list[str] = []
    targets: list[np.ndarray] = []
    values: dict[frozenset[str], list[np.ndarray]] = {c: [] for c in coalitions}
    present: dict[str, list[np.ndarray]] = {m: [] for m in players}
    with torch.inference_mode():
        for batch in predictor.batches(data, target == "label", batch_size):
            batch = batch.to(device)
            full = _outputs(predictor, batch.inputs, batch.presence)
            chosen = _targets(predictor.task, full, batch.labels, target)
            for coalition in coalitions:
                presence = {
                    m: p if m in coalition else torch.zeros_like(p)
                    for m, p in batch.presence.items()
                }
                out = full if coalition == everyone else _outputs(predictor, batch.inputs, presence)
                values[coalition].append(_value(predictor, out, chosen))
            ids.extend(batch.ids)
            targets.append(chosen)
            for m in players:
                present[m].append(batch.presence[m].bool().cpu().numpy())
    stacked = {c: np.concatenate(v) if v else np.zeros(0) for c, v in values.items()}
    phi = shapley_values(stacked, players)
    rows = pd.DataFrame({"id": ids})
    chosen_all = np.concatenate(targets) if targets else np.zeros(0, dtype=np.int64)
    if predictor.task == "regression":
        rows["target"] = predictor.labels.names[0]
    else:
        rows["target"] = [predictor.labels.names[int(i)] for i in chosen_all]
    rows["full"] = stacked[everyone]
    rows["baseline"] = stacked[frozenset()]
    for i, m in enumerate(players):
        rows[f"contribution_{m}"] = phi[:, i]
    presence_all = {m: np.concatenate(v) if v else np.zeros(0, bool) for m, v in present.items()}
    return Attribution(rows, _summary(phi, players, presence_all), players)


def _outputs(predictor: Predictor, inputs: dict, presence: dict) -> torch.Tensor:
    return activate(predictor.model(inputs, presence), predictor.task).float()


def _targets(
    task: str, full: torch.Tensor, labels: torch.Tensor | None, target: Target
) -> np.ndarray:
    if task == "regression":
        return np.zeros(len(full), dtype=np.int64)
    if target == "label":
        if labels is None:
            raise PlaitError("target='label' needs the label column in the data")
        return labels.long().view(-1).cpu().numpy()
    return full.argmax(dim=1).cpu().numpy()


def _value(predictor: Predictor, out: torch.Tensor, chosen: np.ndarray) -> np.ndarray:
    rows = out.cpu().numpy()
    if predictor.task == "regression":
        return predictor.labels.denormalize(rows)[:, 0].astype(np.float64)
    return rows[np.arange(len(rows)), chosen].astype(np.float64)


def _summary(phi: np.ndarray, players: list[str], present: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per modality, over the rows that have it: mean |contribution|, its share of the
    modalities' total, and the mean signed contribution."""

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if len(values) else 0.0

    magnitude = np.array([mean(np.abs(phi[present[m], i])) for i, m in enumerate(players)])
    total = float(magnitude.sum())
    frame = pd.DataFrame(
        {
            "modality": players,
            "mean_abs_contribution": magnitude,
            "share": magnitude / total if total > 0 else np.zeros(len(players)),
            "mean_contribution": [mean(phi[present[m], i]) for i, m in enumerate(players)],
            "rows_present": [int(present[m].sum()) for m in players],
        }
    )
    return frame.set_index("modality")


def plot_attribution(summary: pd.DataFrame, path: Any, title: str = "Modality attribution") -> None:
    """A bar chart of each modality's share of the mean |contribution| (PNG or SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from plait.utils.io import atomic_write

    fig, ax = plt.subplots(figsize=(5, 0.6 + 0.5 * len(summary)))
    ax.barh(list(summary.index), summary["share"], color="#4c72b0")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of mean |Shapley contribution|")
    ax.set_title(title)
    for y, share in enumerate(summary["share"]):
        ax.text(min(share + 0.02, 0.9), y, f"{share:.0%}", va="center")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=str(path).rsplit(".", 1)[-1]))
    plt.close(fig)
