"""`plait prune`: prune a saved model, fine-tune it briefly, save it, say what it cost.

    result = plait.prune("runs/demo/model", amount=0.5, structured=True,
                         finetune_epochs=2, out="model-pruned")
    result.rows   # params, size, latency, main metric: before / pruned / fine-tuned

The output is a normal model folder (`plait.load` reads it; a structurally pruned one
records its new widths in `pruned_shapes.json`) plus `prune_report.json`, the table.
Unstructured pruning (default) zeroes single weights (`unstructured.py`); `--structured`
removes whole channels with torch-pruning (`structured.py`).
"""

from __future__ import annotations

import copy
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.utils import prune as torch_prune

from plait.compress.measure import Measurement, forward, measure, stage_latencies
from plait.compress.rows import first_rows, test_rows
from plait.compress.structured import check_pruned, missing_modality_batches, prune_channels
from plait.compress.unstructured import (
    frozen_layer_count,
    make_permanent,
    mask_smallest_weights,
    zero_fraction,
)
from plait.errors import PlaitError
from plait.pruned_shapes import changed_modules, tensor_shapes
from plait.tasks import BasePredictor
from plait.utils.io import atomic_write_json
from plait.utils.params import parameter_counts

log = logging.getLogger("plait")

REPORT = "prune_report.json"


@dataclass
class PruneResult:
    """The pruned model's folder and the report's rows (before, pruned, fine-tuned)."""

    folder: Path
    rows: list[Measurement]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def report_path(self) -> Path:
        return self.folder / REPORT


def prune(
    model: BasePredictor | str | Path,
    amount: float,
    *,
    out: str | Path,
    structured: bool = False,
    finetune_epochs: int = 0,
    data: str | Path | None = None,
    test: str | Path | None = None,
) -> PruneResult:
    """Prune `amount` (0 < amount < 1) of `model`'s weights (or channels, `structured`),
    fine-tune `finetune_epochs` on its training table (or `data`), save to `out`.

    Measured on the test split (`test`, else the model's own: see `plait.compress.rows`).
    """
    if not 0.0 < amount < 1.0:
        raise PlaitError(f"--amount {amount}: give the share to prune, between 0 and 1 (0.5)")
    if finetune_epochs < 0:
        raise PlaitError(f"--finetune-epochs {finetune_epochs}: give 0 or more epochs")
    out = Path(out)
    predictor, source = _loaded(model)
    if source is not None and out.resolve() == source.resolve():
        raise PlaitError(f"--out {out} is the model being pruned: choose a new folder")
    evaluation, described = test_rows(predictor, test)
    one_row = first_rows(predictor, evaluation)
    threads = torch.get_num_threads()  # the fine-tune sets its own: latency uses these
    with tempfile.TemporaryDirectory(prefix="plait-prune-") as scratch:
        before_folder = source if source is not None else predictor.save(Path(scratch) / "m")
        rows = [
            measure("before", predictor, predictor.evaluate(evaluation), one_row, before_folder)
        ]
        models = {"before": copy.deepcopy(predictor.model)}

        masked, kept = _prune(predictor, amount, structured, one_row)
        rows.append(_save_and_measure("pruned", predictor, evaluation, one_row, out))
        models["pruned"] = copy.deepcopy(predictor.model)
        if finetune_epochs:
            if masked:  # keep the zeros while training: the pruned weights stay pruned
                for layer in masked:
                    torch_prune.custom_from_mask(layer, "weight", layer.weight != 0)
            from plait.compress.finetune import finetune

            predictor.model = finetune(predictor, finetune_epochs, data, Path(scratch) / "run")
            make_permanent(masked)
            rows.append(_save_and_measure("fine-tuned", predictor, evaluation, one_row, out))
            models["fine-tuned"] = predictor.model
        torch.set_num_threads(threads)
        latencies = stage_latencies(predictor, models, one_row)
        for row in rows:
            row.latency_ms = latencies[row.stage]
    settings = {
        "amount": amount,
        "structured": structured,
        "finetune_epochs": finetune_epochs,
        "measured_on": described,
        "zero_weights": round(zero_fraction(predictor.model), 4),
        "resized_modules": len(predictor.pruned_shapes),
        "encoders_kept_whole": kept,
        "threads": threads,
    }
    result = PruneResult(out, rows, settings)
    atomic_write_json(result.report_path, {**settings, "rows": [r.as_dict() for r in rows]})
    return result


def _loaded(model: BasePredictor | str | Path) -> tuple[BasePredictor, Path | None]:
    if isinstance(model, BasePredictor):
        return copy.deepcopy(model), None  # the caller's model stays as it was
    from plait.tasks import load

    if (Path(model) / "export.json").is_file():
        raise PlaitError(
            f"{model} is an ONNX export, which has no PyTorch weights to prune: prune the "
            "model folder it was exported from (export.json names it), then export again"
        )
    return load(model), Path(model)


def _prune(
    predictor: BasePredictor, amount: float, structured: bool, one_row: Any
) -> tuple[list, list[str]]:
    """Prune in place; returns the masked layers (unstructured) to re-mask for training,
    and the encoders whose widths structured pruning had to keep."""
    model = predictor.model
    if not structured:
        layers = mask_smallest_weights(model, amount)
        if not layers:
            raise PlaitError(
                "nothing to prune: every Linear and Conv layer of this model is frozen "
                "(frozen pretrained towers are left alone, since fine-tuning cannot repair them)"
            )
        make_permanent(layers)
        frozen = frozen_layer_count(model)
        log.info(
            "zeroed %.0f%% of the weights of %d layers%s",
            100 * amount,
            len(layers),
            f" ({frozen} frozen layers left alone)" if frozen else "",
        )
        return layers, []
    before = tensor_shapes(model)
    model, kept = _prune_structured(predictor, amount, one_row)
    predictor.model = model
    changed = changed_modules(model, before)
    if not changed:
        raise PlaitError(
            f"structured pruning found no channels it may remove in this model's {_what(predictor)} "
            "(its layers are pretrained, frozen or outputs); prune it without --structured"
        )
    predictor.pruned_shapes = {**predictor.pruned_shapes, **changed}
    log.info("structured pruning resized %d modules", len(changed))
    return [], kept


def _prune_structured(
    predictor: BasePredictor, amount: float, one_row: Any
) -> tuple[Any, list[str]]:
    """A structurally pruned copy of the model that passes `check_pruned`.

    torch-pruning sometimes follows the channels of an encoder wrongly (seen: a text CNN
    whose branches of uneven widths are concatenated): the check then fails. The pruning
    is retried keeping one encoder's widths at a time, then all encoders' (fusion and
    head pruned only), and the encoders kept are logged; when nothing passes, refused.
    """
    what = _what(predictor)
    labels = predictor.labels
    original = predictor.model
    outputs = labels.num_outputs if labels is not None and hasattr(original, "head") else None
    run = forward(predictor)
    encoders = list(getattr(original, "encoders", {}))
    attempts: list[list[str]] = [[]] + [[name] for name in encoders]
    if len(encoders) > 1:
        attempts.append(encoders)
    failure: PlaitError | None = None
    for kept in attempts:
        model = copy.deepcopy(original)
        towers: Any = model.encoders
        extra: list[Any] = [towers[name] for name in kept]
        try:
            prune_channels(model, amount, one_row, run, outputs, what, extra)
            check_pruned(model, missing_modality_batches(one_row), run, what)
        except PlaitError as exc:
            failure = failure or exc
            continue
        if kept:
            log.warning(
                "structured pruning: torch-pruning could not follow the channels of the %s "
                "encoder(s), so they keep their widths and the rest is pruned",
                ", ".join(kept),
            )
            log.debug("the first attempt failed with: %s", failure)
        return model, kept
    assert failure is not None
    raise failure


def _what(predictor: BasePredictor) -> str:
    """The model in words for errors: its fusion, or its aligned pair."""
    pair = getattr(predictor.model, "pair", None)
    if pair is not None:
        return f"aligned towers ({' and '.join(pair)})"
    return f"fusion `{predictor.config.fusion.method}`"


def _save_and_measure(
    stage: str, predictor: BasePredictor, evaluation: Any, one_row: Any, out: Path
) -> Measurement:
    """Evaluate, record the metrics in the folder's metrics.json, save, then measure."""
    metrics = predictor.evaluate(evaluation)
    predictor.metrics = {**metrics, **parameter_counts(predictor.model)}
    folder = predictor.save(out)
    return measure(stage, predictor, metrics, one_row, folder)
