"""The Python API; every function has a CLI twin in `plait.cli`.

import plait
run = plait.train("my.yaml")                    # plait train my.yaml
model = plait.load(run.model_dir)
model.predict(df)                               # plait predict MODEL DATA -o out.csv
plait.evaluate(model, "test.csv", out="report") # plait evaluate MODEL DATA --out report
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from plait.config import PlaitConfig
from plait.errors import ConfigError
from plait.predictor import Predictor
from plait.training import RunResult
from plait.training import fit as _fit


def as_config(
    config: PlaitConfig | str | Path | dict[str, Any], overrides: list[str] | None = None
) -> PlaitConfig:
    """A PlaitConfig from an object, a YAML path or a plain dict (paths relative to cwd)."""
    if isinstance(config, PlaitConfig):
        if overrides:
            raw = config.model_dump(mode="json")
            return as_config(raw, overrides)
        return config
    if isinstance(config, str | Path):
        return PlaitConfig.from_yaml(config, overrides)
    if isinstance(config, dict):
        from plait.config import apply_override

        raw = dict(config)
        for item in overrides or []:
            apply_override(raw, item)
        return PlaitConfig.from_dict(raw).resolve_paths(Path.cwd())
    raise ConfigError(f"cannot read a config from {type(config).__name__}")


def train(
    config: PlaitConfig | str | Path | dict[str, Any],
    *,
    resume: bool = False,
    overrides: list[str] | None = None,
) -> RunResult:
    """Train a model; returns the run (model folder, report, metrics, predictor)."""
    return _fit(as_config(config, overrides), resume=resume)


def _as_predictor(model: Predictor | str | Path) -> Predictor:
    return model if isinstance(model, Predictor) else Predictor.load(model)


def evaluate(
    model: Predictor | str | Path, data: Any, *, out: str | Path | None = None
) -> dict[str, Any]:
    """Metrics of a saved model on labelled data; writes a report folder when `out` is set."""
    predictor = _as_predictor(model)
    metrics = predictor.evaluate(data)
    if out is not None:
        from plait.evaluation import write_report

        write_report(
            Path(out),
            metrics,
            task=predictor.task,
            title=f"Plait evaluation: {predictor.config.name}",
        )
    return metrics


def predict(
    model: Predictor | str | Path, data: Any, *, output: str | Path | None = None
) -> pd.DataFrame:
    """Predictions (and class probabilities) as a DataFrame; also written to `output`."""
    frame = _as_predictor(model).predict(data)
    if output is not None:
        from plait.utils.io import atomic_write

        path = Path(output)
        if path.suffix == ".parquet":
            atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
        else:
            atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    return frame


def robustness(
    model: Predictor | str | Path,
    data: Any,
    *,
    noise_levels: tuple[float, ...] = (0.5, 1.0),
    out: str | Path | None = None,
) -> pd.DataFrame:
    """Metrics with each modality missing and noisy (`plait.evaluation.robustness`);
    writes robustness.csv / .json and a report folder when `out` is set."""
    from plait.data import prepare_inference
    from plait.evaluation import (
        default_conditions,
        evaluate_robustness,
        robustness_section,
        to_jsonable,
        write_report,
    )

    predictor = _as_predictor(model)
    dataset, _ = prepare_inference(
        data, predictor.config, predictor.processors, predictor.labels, require_labels=True
    )
    conditions = default_conditions(predictor.model.modalities, noise_levels=noise_levels)
    frame = evaluate_robustness(predictor, dataset, conditions)
    if out is not None:
        from plait.utils.io import atomic_write, atomic_write_json

        folder = Path(out)
        atomic_write(folder / "robustness.csv", lambda tmp: frame.to_csv(tmp))
        atomic_write_json(
            folder / "robustness.json", to_jsonable(frame.reset_index().to_dict("records"))
        )
        write_report(
            folder,
            predictor.evaluate(dataset),
            task=predictor.task,
            title=f"Plait robustness: {predictor.config.name}",
            extra_sections=[robustness_section(frame)],
        )
    return frame
