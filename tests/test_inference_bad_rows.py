"""Bad rows at inference (Python API): the caller's `on_error`, never the training
config's; one output row per input row; every problem listed with the row's id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import plait
from plait.api import evaluate as evaluate_api
from plait.api import predict as predict_api
from plait.api import train_run as fit
from plait.config import PlaitConfig
from plait.errors import DataError, PlaitError
from plait.predictor import Predictor


@pytest.fixture(scope="module")
def model_dir(tiny_config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A supervised model trained with the default `data.on_error: raise`."""
    raw = tiny_config(tmp_path_factory.mktemp("runs"), "bad-rows", training={"epochs": 1})
    assert PlaitConfig.from_dict(raw).data.on_error == "raise"
    return fit(PlaitConfig.from_dict(raw)).model_dir


@pytest.fixture()
def model(model_dir: Path) -> Predictor:
    loaded = plait.load(model_dir)
    assert isinstance(loaded, Predictor)
    return loaded


def test_predict_frame_has_every_row_and_an_error_column(model, hostile_table, hostile_rows):
    source = pd.read_csv(hostile_table, dtype={"id": str})
    frame = model.predict(source)  # a DataFrame in, ids kept as the table has them

    assert list(frame["id"]) == list(source["id"])
    bad = sorted(hostile_rows)
    assert [i + 1 for i in frame.index[frame["error"].notna()]] == bad
    assert frame.loc[[r - 1 for r in bad], "prediction"].isna().all()
    assert [p.row for p in model.last_problems] == bad
    report = model.last_bad_rows
    assert report is not None and report.rows == bad and report.total == 25
    assert [report.ids[r] for r in bad] == [source["id"][r - 1] for r in bad]

    # the good rows are predicted exactly as they are on their own
    good = source.drop(index=[r - 1 for r in bad]).reset_index(drop=True)
    alone = model.predict(good)
    assert "error" not in alone.columns and model.last_bad_rows is not None
    assert not model.last_bad_rows  # the last table read had no bad row
    kept = frame[frame["error"].isna()].drop(columns="error").reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, alone, check_dtype=False)

    proba = model.predict_proba(source)
    assert list(proba["id"]) == list(source["id"]) and proba["error"].notna().sum() == 9


def test_predict_on_error_raise_and_the_api_writes_the_list(
    model, hostile_table, hostile_rows, tmp_path
):
    with pytest.raises(DataError) as caught:
        model.predict(hostile_table, on_error="raise")
    assert "9 of 25 row(s) cannot be used" in str(caught.value)
    assert "the first is row 2, column 'image'" in str(caught.value)
    assert [p.row for p in caught.value.problems] == sorted(hostile_rows)

    out = tmp_path / "out.parquet"
    frame = predict_api(model, hostile_table, output=out)
    assert len(pd.read_parquet(out)) == len(frame) == 25
    listed = pd.read_csv(tmp_path / "out.bad_rows.csv")
    assert list(listed["row"]) == sorted(hostile_rows)
    with pytest.raises(PlaitError, match="'raise' or 'skip'"):
        predict_api(model, hostile_table, on_error="ignore")  # type: ignore[arg-type]


def test_the_policy_never_comes_from_the_training_config(model, hostile_table, hostile_rows):
    """Trained with `raise`, predict still skips; trained with `skip`, evaluate still
    refuses: each call states its own policy."""
    assert model.config.data.on_error == "raise"
    assert model.predict(hostile_table)["error"].notna().sum() == 9

    data = model.config.data.model_copy(update={"on_error": "skip"})
    model.config = model.config.model_copy(update={"data": data})
    with pytest.raises(DataError, match="9 of 25 row"):
        model.evaluate(hostile_table)
    metrics = model.evaluate(hostile_table, on_error="skip")
    assert metrics["skipped_rows"] == 9 and metrics["n"] == 25 - 9


def test_evaluate_api_writes_the_list_beside_the_report(
    model_dir, hostile_table, hostile_rows, tmp_path
):
    with pytest.raises(DataError, match="--on-error skip"):
        evaluate_api(model_dir, hostile_table, out=tmp_path / "refused")
    metrics = evaluate_api(model_dir, hostile_table, out=tmp_path / "eval", on_error="skip")
    assert metrics["skipped_rows"] == 9
    listed = pd.read_csv(tmp_path / "eval" / "bad_rows.csv")
    assert list(listed["row"]) == sorted(hostile_rows)


def test_a_table_with_no_usable_row_is_an_error(model, hostile_table, hostile_rows):
    source = pd.read_csv(hostile_table)
    only_bad = source.iloc[[r - 1 for r in sorted(hostile_rows)]]
    with pytest.raises(DataError, match="none of its 9 row"):
        model.predict(only_bad)


def test_outputs_of_a_prepared_dataset_are_unchanged(model, demo_data):
    frame = model.predict(demo_data / "test.csv")
    assert "error" not in frame.columns and model.last_problems == []
    dataset = model.dataset(demo_data / "test.csv")
    again = model.predict(dataset)
    np.testing.assert_allclose(
        frame.drop(columns=["id", "prediction"]).to_numpy(float),
        again.drop(columns=["id", "prediction"]).to_numpy(float),
        atol=1e-6,
    )
