"""Robustness to a missing or noisy modality: one policy for every model.

A `Condition` rewrites each evaluation batch before it reaches the model:

- `drop`: the named modalities are absent for every sample (presence False), exactly as
  if their cells were empty; every fusion then ignores them in its own way (see the
  README, "Missing modalities"). The placeholder inputs are left as they are.
- `noise`: modality -> level.
  Float inputs (`pixel_values`, `features`, `input_values`, `input_features`, any
  floating-point tensor whose key is not a mask) get Gaussian noise with standard
  deviation `level`, in the units the model sees, i.e. *after* normalisation (an image
  normalised with the data set's mean/std has unit spread per channel, so 1.0 is noise
  as strong as the signal).
  Text (`input_ids`) is never noised additively: instead each non-pad token of a present
  sample is replaced, independently with probability `level` (clamped to [0, 1]), by the
  unknown-token id (1 for Plait's own vocabulary, the tokenizer's `unk_token_id` for a
  hub model, whose special tokens such as [CLS]/[SEP] are never replaced). Padding
  (attention mask 0 or the pad id) is never touched.
  Noise only touches samples where the modality is present: a missing modality stays a
  placeholder.
- `seed`: noise comes from a `torch.Generator` seeded with it, drawn on the CPU batch by
  batch in data order, so a result is reproducible for a given seed and batch size, on any
  device.

`evaluate_robustness` prepares the data once and evaluates every condition through
`Predictor.evaluate(..., transform=...)`, i.e. the same batching, activation and metrics
as `plait evaluate`; the `clean` row is therefore identical to `predictor.evaluate(data)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from plait.data.batch import Batch
from plait.errors import PlaitError
from plait.evaluation.html import HtmlTable, Note, render_blocks
from plait.evaluation.html import fmt as _fmt

if TYPE_CHECKING:
    from plait.predictor import Predictor

#: Columns of the robustness table per task, in display order.
METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "balanced_accuracy", "f1_macro"),
    "multilabel": ("subset_accuracy", "f1_micro", "f1_macro"),
    "regression": ("mae", "rmse", "r2"),
}
#: The metric `drop_vs_clean` is computed from (all three are higher-is-better).
HEADLINE: dict[str, str] = {
    "classification": "accuracy",
    "multilabel": "subset_accuracy",
    "regression": "r2",
}
#: Input keys that are token ids: perturbed by token replacement, never by Gaussian noise.
TOKEN_KEYS = ("input_ids",)
CLEAN = "clean"


@dataclass(frozen=True)
class Condition:
    """One evaluation condition: modalities to hide and noise levels per modality.

    Args:
        name: the row label, e.g. `missing:image` or `noise:audio@0.5`.
        drop: modalities made absent for every sample.
        noise: modality -> Gaussian std for float inputs, or for text the fraction of
            non-pad tokens replaced by the unknown token (see the module docstring).
        seed: seed of the noise generator.
    """

    name: str
    drop: tuple[str, ...] = ()
    noise: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a condition needs a non-empty name")
        drop = (self.drop,) if isinstance(self.drop, str) else tuple(self.drop)
        noise = {str(m): float(v) for m, v in dict(self.noise).items()}
        for modality, level in noise.items():
            if not math.isfinite(level) or level < 0:
                raise ValueError(
                    f"condition {self.name!r}: noise level for {modality!r} must be a finite "
                    f"number >= 0, got {level}"
                )
        object.__setattr__(self, "drop", drop)
        object.__setattr__(self, "noise", noise)

    @property
    def is_clean(self) -> bool:
        """True when the condition changes nothing."""
        return not self.drop and not any(v > 0 for v in self.noise.values())

    @property
    def modalities(self) -> set[str]:
        """Every modality the condition names."""
        return set(self.drop) | set(self.noise)


@dataclass(frozen=True)
class TextIds:
    """Token ids text noise needs: `pad` is never replaced, `unk` replaces, `special`
    (a hub tokenizer's [CLS], [SEP] ...) is never replaced."""

    pad: int = 0
    unk: int = 1
    special: tuple[int, ...] = ()


def default_conditions(
    modalities: Sequence[str], noise_levels: Sequence[float] = (0.5, 1.0), seed: int = 0
) -> list[Condition]:
    """`clean`, then `missing:<m>` per modality (only with more than one modality, since
    hiding the only one leaves nothing), then `noise:<m>@<level>` per modality and level."""
    modalities = list(modalities)
    conditions = [Condition(CLEAN, seed=seed)]
    if len(modalities) > 1:
        conditions += [Condition(f"missing:{m}", drop=(m,), seed=seed) for m in modalities]
    conditions += [
        Condition(f"noise:{m}@{_level(level)}", noise={m: float(level)}, seed=seed)
        for m in modalities
        for level in noise_levels
    ]
    return conditions


def apply_condition(
    batch: Batch,
    condition: Condition,
    generator: torch.Generator,
    *,
    text_ids: Mapping[str, TextIds] | None = None,
) -> Batch:
    """A new Batch with `condition` applied; `batch` is not modified.

    Deterministic given the generator's state. Tensors of untouched modalities are shared
    with `batch`, not copied. `text_ids` gives the pad/unknown/special ids per text
    modality (default `TextIds()`: Plait's own vocabulary, pad 0, unknown 1).
    """
    unknown = sorted(condition.modalities - set(batch.inputs))
    if unknown:
        raise ValueError(
            f"condition {condition.name!r} names unknown modalities {unknown}; "
            f"the model has {list(batch.inputs)}"
        )
    text_ids = text_ids or {}
    presence = dict(batch.presence)
    for name in condition.drop:
        presence[name] = torch.zeros_like(batch.presence[name], dtype=torch.bool)
    inputs = dict(batch.inputs)
    for name in batch.inputs:  # model order, so the draws do not depend on dict order
        level = condition.noise.get(name, 0.0)
        if level > 0:
            present = batch.presence[name].bool()
            ids = text_ids.get(name, TextIds())
            inputs[name] = _noisy(batch.inputs[name], present, level, generator, ids)
    return Batch(inputs=inputs, presence=presence, labels=batch.labels, ids=batch.ids)


def evaluate_robustness(
    predictor: Predictor,
    data: Any,
    conditions: Sequence[Condition] | None = None,
    batch_size: int = 64,
) -> pd.DataFrame:
    """Evaluate `predictor` on labelled `data` under each condition.

    Args:
        predictor: a trained model (`plait.load(folder)` or `fit(...).predictor`).
        data: a table path, a DataFrame or a prepared `MultimodalDataset` with labels;
            read and validated once, then reused for every condition.
        conditions: default `default_conditions(model modalities)`. A clean condition
            (no drop, no noise) is the reference: the first one given is moved to the
            top, or `Condition("clean")` is added when there is none.
        batch_size: evaluation batch size (noise draws follow the batch order).

    Returns:
        One row per condition (index `condition`, clean first) with the task's metrics
        (`METRICS[task]`) and `drop_vs_clean`: clean minus this condition's headline
        metric (`HEADLINE[task]`), so positive means worse than clean. `frame.attrs`
        holds `task`, `headline` and `n` (samples evaluated).
    """
    from plait.data import MultimodalDataset

    task = predictor.task
    modalities = list(predictor.model.modalities)
    conditions = _ordered(
        list(default_conditions(modalities) if conditions is None else conditions)
    )
    for condition in conditions:
        unknown = sorted(condition.modalities - set(modalities))
        if unknown:
            raise PlaitError(
                f"robustness condition {condition.name!r} names unknown modalities "
                f"{unknown}; the model has {modalities}"
            )
    if isinstance(data, MultimodalDataset):
        dataset = data
    else:
        dataset = predictor.prepare(data, require_labels=True)  # as predict reads rows
    ids = text_ids_of(predictor.processors)

    columns = METRICS[task]
    headline = HEADLINE[task]
    rows: dict[str, dict[str, float]] = {}
    n = 0
    for condition in conditions:
        transform = None
        if not condition.is_clean:
            transform = _transform(condition, ids)
        metrics = predictor.evaluate(dataset, batch_size=batch_size, transform=transform)
        n = int(metrics.get("n") or 0)
        rows[condition.name] = {c: _number(metrics.get(c)) for c in columns}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(columns), dtype=float)
    frame.index.name = "condition"
    frame["drop_vs_clean"] = frame[headline].iloc[0] - frame[headline]
    frame.attrs.update({"task": task, "headline": headline, "n": n})
    return frame


def robustness_section(frame: pd.DataFrame) -> tuple[str, str]:
    """(heading, html) for `write_report(..., extra_sections=[...])`; rendered from the
    templates, so the content is escaped."""
    headline = frame.attrs.get("headline") or next(
        (h for h in HEADLINE.values() if h in frame.columns), "the headline metric"
    )
    rows = [
        [str(name)] + [_fmt(_number(value)) for value in row.tolist()]
        for name, row in frame.iterrows()
    ]
    note = (
        f"drop_vs_clean: clean {headline} minus the condition's (positive = worse). "
        "missing:M hides modality M for every sample; noise:M@s adds Gaussian noise of "
        "standard deviation s to M's normalised inputs (text: replaces a fraction s of "
        "tokens by the unknown token)."
    )
    header = [frame.index.name or "condition", *map(str, frame.columns)]
    body = render_blocks([Note(note), HtmlTable(header, rows)])
    return "Robustness to missing or noisy modalities", body


def text_ids_of(processors: Mapping[str, Any]) -> dict[str, TextIds]:
    """Pad/unknown/special ids of each text processor (scratch vocabulary or tokenizer)."""
    out: dict[str, TextIds] = {}
    for name, processor in processors.items():
        if getattr(processor, "kind", None) != "text":
            continue
        pad = int(processor.pad_token_id)
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:
            out[name] = TextIds(pad=pad)
            continue
        unk = tokenizer.unk_token_id
        unk = pad if unk is None else int(unk)  # no unknown token: pad (attended) instead
        special = tuple(int(i) for i in tokenizer.all_special_ids if int(i) != unk)
        out[name] = TextIds(pad=pad, unk=unk, special=special)
    return out


# ----------------------------------------------------------------------------- helpers


def _transform(condition: Condition, text_ids: Mapping[str, TextIds]) -> Callable[[Batch], Batch]:
    """A batch transform with its own generator, fresh for every evaluation pass."""
    generator = torch.Generator().manual_seed(int(condition.seed))

    def transform(batch: Batch) -> Batch:
        return apply_condition(batch, condition, generator, text_ids=text_ids)

    return transform


def _noisy(
    inputs: dict[str, Tensor],
    present: Tensor,
    level: float,
    generator: torch.Generator,
    ids: TextIds,
) -> dict[str, Tensor]:
    out = dict(inputs)
    for key, value in inputs.items():
        if key in TOKEN_KEYS:
            out[key] = _replace_tokens(
                value, inputs.get("attention_mask"), present, level, generator, ids
            )
        elif value.is_floating_point() and "mask" not in key:
            noise = torch.randn(value.shape, generator=generator, device=generator.device)
            keep = present.to(value.device).view(-1, *([1] * (value.dim() - 1)))
            out[key] = value + (level * noise).to(value.device, value.dtype) * keep
    return out


def _replace_tokens(
    input_ids: Tensor,
    attention_mask: Tensor | None,
    present: Tensor,
    fraction: float,
    generator: torch.Generator,
    ids: TextIds,
) -> Tensor:
    """Each eligible token -> `ids.unk` with probability `fraction` (clamped to [0, 1]).
    Eligible: a present sample, attended, not the pad id, not a special token."""
    eligible = input_ids != ids.pad
    if attention_mask is not None and attention_mask.shape == input_ids.shape:
        eligible &= attention_mask.bool()
    for special in ids.special:
        eligible &= input_ids != special
    eligible &= present.to(input_ids.device).view(-1, *([1] * (input_ids.dim() - 1)))
    draws = torch.rand(input_ids.shape, generator=generator, device=generator.device)
    replace = eligible & (draws.to(input_ids.device) < min(fraction, 1.0))
    return torch.where(replace, torch.full_like(input_ids, ids.unk), input_ids)


def _ordered(conditions: list[Condition]) -> list[Condition]:
    names = [c.name for c in conditions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PlaitError(f"robustness condition names must be unique; repeated: {duplicates}")
    clean = next((c for c in conditions if c.is_clean), None)
    if clean is None:
        clean = Condition(CLEAN)
        if CLEAN in names:
            raise PlaitError(f"a condition called {CLEAN!r} must not drop or noise anything")
    return [clean, *(c for c in conditions if c is not clean)]


def _level(level: float) -> str:
    return f"{float(level):g}"


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return float("nan")
    return float(value)
