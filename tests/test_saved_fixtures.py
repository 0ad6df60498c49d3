"""Model folders saved by an earlier Plait keep loading and give the same outputs.

`tests/fixtures/saved_v0/` holds a tiny supervised and a tiny aligned folder written by
the code of that time (see make_saved_v0.py); every later change of the saved format must
keep this test passing unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

import plait
from plait.alignment.predictor import AlignedPredictor
from plait.predictor import Predictor

SAVED_V0 = Path(__file__).parent / "fixtures" / "saved_v0"


def test_v0_supervised_folder_loads_and_predicts_as_saved(demo_data: Path, tmp_path: Path):
    folder = shutil.copytree(SAVED_V0 / "supervised", tmp_path / "supervised")
    predictor = plait.load(folder)
    assert isinstance(predictor, Predictor)
    expected = pd.read_csv(SAVED_V0 / "supervised-expected.csv", dtype={"id": str})
    got = predictor.predict_proba(demo_data / "test.csv")
    assert list(got.columns) == list(expected.columns)
    assert got["id"].astype(str).tolist() == expected["id"].tolist()
    np.testing.assert_allclose(
        got.drop(columns="id").to_numpy(float),
        expected.drop(columns="id").to_numpy(float),
        atol=1e-5,
    )


def test_v0_aligned_folder_loads_and_embeds_as_saved(demo_data: Path, tmp_path: Path):
    folder = shutil.copytree(SAVED_V0 / "aligned", tmp_path / "aligned")
    predictor = plait.load(folder)
    assert isinstance(predictor, AlignedPredictor)
    expected = json.loads((SAVED_V0 / "aligned-expected.json").read_text())
    for modality, saved in expected.items():
        ids, vectors = predictor.embed(demo_data / "test.csv", modality)
        assert ids == saved["ids"]
        np.testing.assert_allclose(vectors, np.array(saved["vectors"]), atol=1e-5)
