"""The training spine end to end: fit -> run folder -> saved model -> predictions; exact
resumption; checkpoint safety; every task; bad rows; class weights."""

from __future__ import annotations

import importlib
import json
import signal
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch

import plait
from plait.api import train_run as fit
from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.datasets.demo import CLASS_NAMES, label_factors
from plait.errors import PlaitError
from plait.evaluation import modality_attribution
from plait.tasks.supervised import task_loss

# `plait.training.fit` the name is the function; the module holds `_trainer` and friends
fit_module = importlib.import_module("plait.training.fit")


def config_of(raw: dict) -> PlaitConfig:
    return PlaitConfig.from_dict(raw)


@pytest.fixture(scope="module")
def trained(tiny_config, tmp_path_factory):
    """One finished 2-epoch classification run, shared by the read-only tests below."""
    raw = tiny_config(tmp_path_factory.mktemp("runs"), "base", evaluation={"report": True})
    config = config_of(raw)
    return fit(config)


# --------------------------------------------------------------------- a finished run


def test_run_folder_holds_everything(trained):
    run = trained.run_dir
    for path in (
        "config.yaml",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "logs/csv/metrics.csv",
        "model/config.yaml",
        "model/model.safetensors",
        "model/labels.json",
        "report/metrics.json",
        "report/report.html",
    ):
        assert (run / path).is_file(), path
    processors = run / "model" / "processors"
    assert sorted(p.name for p in processors.iterdir()) == ["audio", "caption", "image"]
    assert not (run / "bad_rows.csv").exists()
    assert trained.model_dir == run / "model"
    assert trained.report_path == run / "report" / "report.html"

    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["split"] == "test" and metrics["n"] == 16
    assert metrics["epochs"] == 2 == trained.epochs_run
    assert metrics.keys() == trained.metrics.keys()
    assert metrics["accuracy"] == trained.metrics["accuracy"]
    labels = json.loads((run / "model" / "labels.json").read_text())
    assert labels["names"] == sorted(CLASS_NAMES)

    history = pd.read_csv(run / "logs" / "csv" / "metrics.csv")
    assert {"train/loss", "valid/loss", "valid/accuracy"} <= set(history.columns)
    assert sorted(history["epoch"].unique()) == [0, 1]


def test_saved_model_predicts_like_the_trained_one(trained, demo_data):
    test_csv = demo_data / "test.csv"
    loaded = plait.load(trained.model_dir)
    frame = loaded.predict(test_csv)

    assert len(frame) == len(pd.read_csv(test_csv)) == 16
    assert list(frame["id"]) == [str(i) for i in pd.read_csv(test_csv)["id"]]
    assert set(frame["prediction"]) <= set(CLASS_NAMES)
    proba = frame[[f"proba_{c}" for c in loaded.labels.names]].to_numpy()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert list(frame["prediction"]) == [loaded.labels.names[i] for i in proba.argmax(1)]

    in_memory = trained.predictor.predict(test_csv)
    assert list(in_memory["prediction"]) == list(frame["prediction"])
    np.testing.assert_allclose(
        in_memory.drop(columns=["id", "prediction"]).to_numpy(),
        frame.drop(columns=["id", "prediction"]).to_numpy(),
        rtol=0,
        atol=1e-6,
    )
    # the report's metrics are the saved model's metrics on the same rows
    assert loaded.evaluate(test_csv)["accuracy"] == pytest.approx(trained.metrics["accuracy"])


def test_checkpoints_hold_no_pickled_objects_and_no_temp_files(trained):
    checkpoints = trained.run_dir / "checkpoints"
    for name in ("last.ckpt", "best.ckpt"):
        state = torch.load(checkpoints / name, map_location="cpu", weights_only=True)
        assert state["state_dict"] and "plait_rng" in state
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    # last.ckpt is the end of the final epoch (36 training rows / 16 = 3 steps per epoch),
    # not only the last improvement of the monitored metric
    assert last["epoch"] == 1 and last["global_step"] == 6
    leftovers = [p for p in trained.run_dir.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_refuses_to_overwrite_a_run_and_to_resume_nothing(trained, tiny_config, tmp_path):
    again = config_of(tiny_config(trained.run_dir.parent, "base"))
    with pytest.raises(PlaitError, match="already holds a run.*--resume"):
        fit(again)

    fresh = config_of(tiny_config(tmp_path, "never-ran"))
    with pytest.raises(PlaitError, match="cannot resume.*last.ckpt"):
        fit(fresh, resume=True)
    assert not (tmp_path / "never-ran" / "checkpoints").exists()


# ------------------------------------------------------------------ exact resumption


class StopAt(pl.Callback):
    """Raise KeyboardInterrupt (as Ctrl-C would) before training batch `batch` of `epoch`."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise KeyboardInterrupt


def _random_config(tiny_config, out_dir: Path, name: str) -> PlaitConfig:
    """3 epochs with every source of randomness on: augmentation, dropout, modality dropout."""
    raw = tiny_config(out_dir, name, training={"epochs": 3})
    raw["modalities"]["image"]["augment"] = True
    raw["modalities"]["audio"]["spec_augment"] = True
    raw["fusion"] = {"method": "concat", "dim": 16, "dropout": 0.2, "modality_dropout": 0.2}
    return config_of(raw)


@pytest.fixture(scope="module")
def uninterrupted(tiny_config, tmp_path_factory):
    return fit(_random_config(tiny_config, tmp_path_factory.mktemp("runs"), "whole"))


def _final_state(run) -> dict:
    path = run.run_dir / "checkpoints" / "last.ckpt"
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.parametrize(
    ("epoch", "batch"),
    [(2, 1), (1, 0), (0, 1)],
    ids=["mid-epoch-2", "start-of-epoch-1", "mid-epoch-0"],  # epoch 0: from the start checkpoint
)
def test_resume_ends_exactly_where_an_uninterrupted_run_ends(
    uninterrupted, tiny_config, tmp_path, monkeypatch, epoch, batch
):
    config = _random_config(tiny_config, tmp_path, "cut")
    make_trainer = fit_module._trainer

    def interrupting_trainer(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        trainer.callbacks.append(StopAt(epoch, batch))
        return trainer

    monkeypatch.setattr(fit_module, "_trainer", interrupting_trainer)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="--resume"):
        fit(config)
    # Lightning leaves SIGINT ignored after a Ctrl-C; fit gives the caller its handler back
    assert signal.getsignal(signal.SIGINT) is handler
    assert not (tmp_path / "cut" / "model").exists()
    monkeypatch.setattr(fit_module, "_trainer", make_trainer)

    resumed = fit(config, resume=True)

    whole, cut = _final_state(uninterrupted), _final_state(resumed)
    assert (cut["epoch"], cut["global_step"]) == (whole["epoch"], whole["global_step"]) == (2, 9)
    assert whole["state_dict"].keys() == cut["state_dict"].keys()
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, cut["state_dict"][key]), key
    for a, b in zip(
        whole["optimizer_states"][0]["state"].values(),
        cut["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        assert torch.equal(a["exp_avg"], b["exp_avg"])
    assert whole["lr_schedulers"] == cut["lr_schedulers"]
    # the training history survives the resume (Lightning's CSV logger restarts the file)
    pd.testing.assert_frame_equal(
        pd.read_csv(uninterrupted.run_dir / "logs" / "csv" / "metrics.csv"),
        pd.read_csv(resumed.run_dir / "logs" / "csv" / "metrics.csv"),
    )
    assert resumed.metrics["accuracy"] == pytest.approx(uninterrupted.metrics["accuracy"])


# ------------------------------------------------------------------ other tasks, data


def _relabelled(demo_data: Path, out: Path, relabel) -> Path:
    """Copies of train.csv / test.csv in `out` with media paths made absolute and
    `relabel(frame, split)` applied; returns `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        frame = pd.read_csv(demo_data / f"{split}.csv")
        for column in ("image", "audio"):
            frame[column] = [
                str(demo_data / v) if isinstance(v, str) and v else v for v in frame[column]
            ]
        relabel(frame, split).to_csv(out / f"{split}.csv", index=False)
    return out


def _config_on(tiny_config, data_dir: Path, out_dir: Path, **sections) -> dict:
    raw = tiny_config(out_dir, **sections)
    raw["data"]["train"] = str(data_dir / "train.csv")
    raw["data"]["test"] = str(data_dir / "test.csv")
    return raw


def test_regression_trains_and_predicts_numbers(tiny_config, demo_data, tmp_path):
    def relabel(frame, split):
        return frame.assign(score=[float(CLASS_NAMES.index(v)) for v in frame["label"]])

    data = _relabelled(demo_data, tmp_path / "data", relabel)
    raw = _config_on(tiny_config, data, tmp_path / "runs", name="reg", training={"epochs": 1})
    raw["data"].update(label="score", split={"method": "random", "valid": 0.25, "test": 0.0})
    raw["head"] = {"task": "regression", "hidden": 16}
    run = fit(config_of(raw))

    assert {"mae", "rmse", "r2"} <= set(run.metrics)
    assert (tmp_path / "runs" / "reg" / "checkpoints" / "best.ckpt").is_file()
    frame = plait.load(run.model_dir).predict(data / "test.csv")
    assert list(frame.columns) == ["id", "score"]
    assert len(frame) == 16 and np.isfinite(frame["score"]).all()
    # outputs are de-standardised back to the label's units (0..7), not z-scores
    assert 0.5 < frame["score"].mean() < 6.5
    # modality attribution explains the predicted value itself, in the label's units
    explained = modality_attribution(plait.load(run.model_dir), data / "test.csv").rows
    assert np.allclose(explained["full"], frame["score"], atol=1e-4)
    _assert_contributions_add_up(explained)


def test_multilabel_trains_and_predicts_label_sets(tiny_config, demo_data, tmp_path):
    def relabel(frame, split):
        tags = ["|".join(label_factors(v)[:2]) for v in frame["label"]]  # e.g. circle|calm
        return frame.assign(tags=tags)

    data = _relabelled(demo_data, tmp_path / "data", relabel)
    raw = _config_on(tiny_config, data, tmp_path / "runs", name="multi", training={"epochs": 1})
    raw["data"].update(label="tags", split={"method": "random", "valid": 0.25, "test": 0.0})
    raw["head"] = {"task": "multilabel", "hidden": 16}
    run = fit(config_of(raw))

    names = ["busy", "calm", "circle", "square"]
    assert run.predictor.labels.names == names
    assert "f1_macro" in run.metrics or "subset_accuracy" in run.metrics
    frame = plait.load(run.model_dir).predict(data / "test.csv")
    assert list(frame.columns) == ["id", "prediction", *(f"proba_{n}" for n in names)]
    assert len(frame) == 16
    proba = frame[[f"proba_{n}" for n in names]].to_numpy()
    assert ((proba >= 0) & (proba <= 1)).all()
    for row, text in zip(proba, frame["prediction"].fillna(""), strict=True):
        on = [n for n, p in zip(names, row, strict=True) if p >= 0.5]
        assert text == "|".join(on)
    # modality attribution explains each row's highest-scoring label
    explained = modality_attribution(plait.load(run.model_dir), data / "test.csv").rows
    assert list(explained["target"]) == [names[i] for i in proba.argmax(1)]
    assert np.allclose(explained["full"], proba.max(1), atol=1e-5)
    _assert_contributions_add_up(explained)


def _assert_contributions_add_up(rows) -> None:
    columns = [c for c in rows.columns if c.startswith("contribution_")]
    assert len(columns) == 3
    assert np.allclose(rows[columns].sum(axis=1), rows["full"] - rows["baseline"], atol=1e-4)


def test_skipped_bad_rows_are_listed_in_bad_rows_csv(tiny_config, demo_data, tmp_path):
    bad_positions = [30, 5]  # 0-based; data rows 31 and 6 of train.csv

    def break_images_number_ids(frame, split):
        offset = 1000 if split == "train" else 0
        frame["id"] = [f"{offset + i:04d}" for i in range(1, len(frame) + 1)]  # "0001"...
        if split == "train":
            frame["image"] = frame["image"].astype(object)
            for position in bad_positions:
                frame.loc[position, "image"] = str(demo_data / "images" / f"gone-{position}.png")
        return frame

    data = _relabelled(demo_data, tmp_path / "data", break_images_number_ids)
    raw = _config_on(
        tiny_config,
        data,
        tmp_path / "runs",
        name="skip",
        training={"epochs": 1},
        evaluation={"report": True},
    )
    raw["data"]["on_error"] = "skip"
    run = fit(config_of(raw))

    bad = pd.read_csv(run.run_dir / "bad_rows.csv")
    assert list(bad.columns) == ["file", "row", "column", "reason"]
    assert bad["row"].tolist() == [6, 31]  # ordered by row
    assert (bad["file"] == str(data / "train.csv")).all()
    assert (bad["column"] == "image").all()
    assert "gone-5.png" in bad.loc[0, "reason"]
    assert len(run.problems) == 2
    assert (run.model_dir / "model.safetensors").is_file()

    # the label counts saved with the model leave the skipped rows out
    source = pd.read_csv(data / "train.csv", dtype=str)
    split = prepare_data(config_of(raw))
    used = source["label"].iloc[split.train.rows].value_counts()
    labels = json.loads((run.model_dir / "labels.json").read_text())
    assert labels["counts"] == [int(used.get(name, 0)) for name in labels["names"]]
    assert labels["num_rows"] == len(split.train) == sum(labels["counts"])

    # metrics.json and the report say rows were skipped, how many, per split, and where
    metrics = json.loads((run.run_dir / "report" / "metrics.json").read_text())
    skipped = metrics["skipped_rows"]
    assert skipped["total"] == 2
    assert sum(skipped["per_split"].values()) == 2
    assert set(skipped["per_split"]) <= {"train", "valid"}
    assert skipped["list"] == str(run.run_dir / "bad_rows.csv")
    html = (run.run_dir / "report" / "report.html").read_text()
    assert "2 rows were skipped" in html and "bad_rows.csv" in html

    # ids come back verbatim: "0001" stays "0001", so predictions join to the source
    frame = plait.load(run.model_dir).predict(data / "test.csv")
    assert frame["id"].tolist() == [f"{i:04d}" for i in range(1, 17)]


def test_balanced_class_weights(tiny_config, tmp_path):
    raw = tiny_config(tmp_path, "balanced", training={"epochs": 1})
    raw["head"] = {"task": "classification", "hidden": 16, "class_weights": "balanced"}
    config = config_of(raw)

    data = prepare_data(config)
    loss = task_loss(config, data)
    counts = torch.bincount(data.train.labels, minlength=8).float()
    expected = counts.sum() / (8 * counts.clamp_min(1))
    assert torch.allclose(loss.class_weights, expected)
    plain = task_loss(config_of(tiny_config(tmp_path, "plain")), data)
    assert plain.class_weights is None

    run = fit(config)
    assert 0.0 <= run.metrics["accuracy"] <= 1.0
    assert (run.model_dir / "model.safetensors").is_file()
