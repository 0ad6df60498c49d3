"""Modality attribution: the Shapley arithmetic on known games, and on a trained model the
contributions add up, a missing modality gets none, and a modality the model depends on
alone takes the whole credit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from plait.api import train_run as fit
from plait.cli import app
from plait.config import PlaitConfig
from plait.errors import PlaitError
from plait.evaluation.attribution import modality_attribution, shapley_values

PLAYERS = ["a", "b", "c"]


def _game(value) -> dict[frozenset[str], np.ndarray]:
    coalitions = [frozenset(s) for s in ([], ["a"], ["b"], ["c"], ["a", "b"], ["a", "c"],
                                         ["b", "c"], ["a", "b", "c"])]  # fmt: skip
    return {c: np.array([float(value(c))]) for c in coalitions}


def test_additive_game_gives_each_player_its_own_weight():
    weights = {"a": 0.5, "b": -0.2, "c": 0.1}
    phi = shapley_values(_game(lambda s: sum(weights[p] for p in s)), PLAYERS)
    assert phi[0] == pytest.approx([0.5, -0.2, 0.1])


def test_pure_interaction_is_split_between_the_two_players():
    phi = shapley_values(_game(lambda s: float({"a", "b"} <= s)), PLAYERS)
    assert phi[0] == pytest.approx([0.5, 0.5, 0.0])


def test_values_sum_to_full_minus_empty():
    rng = np.random.default_rng(0)
    table = {c: rng.normal(size=4) for c in _game(lambda s: 0)}
    phi = shapley_values(table, PLAYERS)
    full = table[frozenset(PLAYERS)] - table[frozenset()]
    assert phi.sum(axis=1) == pytest.approx(full)


@pytest.fixture(scope="module")
def predictor(tiny_config, tmp_path_factory):
    raw = tiny_config(tmp_path_factory.mktemp("runs"), "explain")
    return fit(PlaitConfig.from_dict(raw)).predictor


def test_contributions_add_up_to_the_prediction(predictor, demo_data):
    result = modality_attribution(predictor, demo_data / "test.csv")
    rows = result.rows
    columns = [f"contribution_{m}" for m in result.modalities]
    assert len(rows) == len(pd.read_csv(demo_data / "test.csv"))
    assert rows[columns].sum(axis=1).to_numpy() == pytest.approx(
        (rows["full"] - rows["baseline"]).to_numpy(), abs=1e-5
    )
    # `full` is the probability `predict` gives the predicted class
    predicted = predictor.predict(demo_data / "test.csv")
    assert list(rows["target"]) == list(predicted["prediction"])
    probs = [predicted.loc[i, f"proba_{t}"] for i, t in enumerate(rows["target"])]
    assert rows["full"].to_numpy() == pytest.approx(np.array(probs), abs=1e-5)
    assert result.summary["share"].sum() == pytest.approx(1.0)


def test_a_missing_modality_gets_no_credit(predictor, demo_data):
    frame = pd.read_csv(demo_data / "test.csv")
    for modality in predictor.config.modalities.values():  # the frame stands alone
        if modality.kind != "text":
            frame[modality.column] = [
                str(demo_data / v) if isinstance(v, str) else v for v in frame[modality.column]
            ]
    column = predictor.config.modalities["image"].column
    frame[column] = frame[column].astype(object)
    frame.loc[:3, column] = None
    result = modality_attribution(predictor, frame)
    contributions = result.rows["contribution_image"].to_numpy()
    assert np.all(contributions[:4] == 0.0)
    assert result.summary.loc["image", "rows_present"] <= len(frame) - 4


def test_true_label_target_and_bad_target(predictor, demo_data):
    result = modality_attribution(predictor, demo_data / "test.csv", target="label")
    truth = pd.read_csv(demo_data / "test.csv")[predictor.config.data.label].astype(str)
    assert list(result.rows["target"]) == list(truth)
    with pytest.raises(PlaitError, match="predicted' or 'label"):
        modality_attribution(predictor, demo_data / "test.csv", target="nope")  # type: ignore[arg-type]


def test_a_model_that_reads_one_modality_credits_only_it(predictor, demo_data):
    """Wrap the model so its output depends on the audio alone: every other modality's
    contribution must be exactly zero."""
    model = predictor.model
    original = model.forward

    def audio_only(inputs, presence):
        hidden = {m: torch.zeros_like(p) if m != "audio" else p for m, p in presence.items()}
        return original(inputs, hidden)

    model.forward = audio_only  # type: ignore[method-assign]
    try:
        result = modality_attribution(predictor, demo_data / "test.csv")
    finally:
        del model.forward
    for m in result.modalities:
        values = result.rows[f"contribution_{m}"].to_numpy()
        if m == "audio":
            assert np.abs(values).sum() > 0
        else:
            assert np.allclose(values, 0.0)
    assert result.summary.loc["audio", "share"] == pytest.approx(1.0)


def test_cli_explain_writes_rows_summary_and_chart(predictor, demo_data, tmp_path):
    model_dir = tmp_path / "model"
    predictor.save(model_dir)
    out = tmp_path / "explain"
    result = CliRunner().invoke(app, ["explain", str(model_dir), str(demo_data / "test.csv"),
                                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Modality attribution" in result.output
    rows = pd.read_csv(out / "attribution.csv")
    assert {"id", "target", "full", "baseline", "contribution_audio"} <= set(rows.columns)
    summary = pd.read_csv(out / "summary.csv", index_col="modality")
    assert set(summary.index) == set(predictor.model.modalities)
    assert (out / "modality_attribution.png").stat().st_size > 1000
