"""A trained supervised model: `Predictor` (predict, predict_proba, evaluate) and `load`.

The code lives in `plait.tasks` (`supervised_predictor.py` beside the predictor base
every task shares); these names stay importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from plait.heads.activation import activate
from plait.tasks import load as _load
from plait.tasks.supervised_predictor import Predictor, check_finite_outputs

if TYPE_CHECKING:
    from plait.tasks.aligned_predictor import AlignedPredictor


def load(path: str | Path, device: str = "cpu") -> Predictor | AlignedPredictor:
    """Load a saved model folder: `plait.load("runs/demo/model").predict(df)`.

    The task the folder records picks the predictor: an aligned model (or a folder whose
    config.yaml has an `alignment:` block, from before tasks were recorded) loads as an
    `AlignedPredictor` (embed, similarity, zero-shot), any other as a `Predictor`. A
    missing, half-saved or corrupt folder raises one `PlaitError` naming the file.

    An ONNX export folder (`plait export`, it holds `export.json`) loads as an
    `OnnxPredictor` / `OnnxAlignedPredictor` / `OnnxCaptioningPredictor` with the same
    calls, run by ONNX Runtime (needs the `ship` extra).
    """
    if (Path(path) / "export.json").is_file():
        from plait.export.onnx_predictor import load_export

        # a captioner's export loads too, as a saved captioner does through `_load`
        return cast("Predictor | AlignedPredictor", load_export(path))
    return cast("Predictor | AlignedPredictor", _load(path, device=device))


__all__ = ["Predictor", "activate", "check_finite_outputs", "load"]
