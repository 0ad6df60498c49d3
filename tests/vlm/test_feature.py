"""Descriptions as a feature: a text modality written by the tiny local VLM, trained with
a fusion, saved with its record, reloaded (no large model needed to load) and used to
predict, asking the model the same way as in training."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import plait
from plait.api import train_run
from plait.config import PlaitConfig
from plait.errors import ConfigError, DataError
from plait.vlm.feature import DESCRIPTIONS_FILE


def _described_config(tiny_config, out: Path, chat_vlm: Path, **describe: object) -> dict:
    raw = tiny_config(out, "described")
    raw["modalities"].pop("audio")
    raw["modalities"]["seen"] = {
        "kind": "text",
        "column": "seen",
        "max_length": 8,
        "encoder": {"type": "text_cnn", "dim": 16},
        "describe": {"image": "image", "model": str(chat_vlm), "max_new_tokens": 4,
                     "cache_dir": str(out / "vlm-cache"), **describe},
    }  # fmt: skip
    raw["training"]["epochs"] = 1
    return raw


def test_train_reload_predict_with_a_described_modality(
    tiny_config, chat_vlm: Path, demo_data: Path, pictures: list[Path], tmp_path: Path
) -> None:
    raw = _described_config(tiny_config, tmp_path / "runs", chat_vlm, template="caption")
    run = train_run(PlaitConfig.from_dict(raw))
    described = pd.read_parquet(run.run_dir / "described" / "train.parquet")
    has_image = described["image"].notna()
    assert described.loc[has_image, "seen"].notna().all()  # every picture was described
    assert described.loc[~has_image, "seen"].isna().all()  # no picture: no description

    record = json.loads((run.model_dir / DESCRIPTIONS_FILE).read_text())
    seen = record["modalities"]["seen"]
    assert (
        seen["prompt"] == "Write a caption for this {kind}, as a short phrase without a full stop."
    )
    assert seen["identity"].startswith(f"hub:{chat_vlm}@")
    manifest = json.loads((run.model_dir / "manifest.json").read_text())
    assert DESCRIPTIONS_FILE in manifest["files"]

    check = plait.check_data(PlaitConfig.from_dict(raw))  # describes as train does (cached)
    assert not check.problems and check.rows["train"] > 0

    model = plait.load(run.model_dir)
    assert model.descriptions["seen"].prompt == seen["prompt"]
    assert model._describer is None  # loading never touches the large model
    test = pd.read_csv(demo_data / "test.csv")
    test["image"] = [str(demo_data / v) if isinstance(v, str) else v for v in test["image"]]
    test = test.head(6).assign(image=[str(p) for p in pictures] + [test["image"][5]])
    cache = tmp_path / "runs" / "vlm-cache"
    cached = len(list(cache.rglob("*.json")))
    first = model.predict(test)
    assert len(first) == 6 and first["prediction"].notna().all()
    # the five pictures never seen in training were described by the model now
    assert len(list(cache.rglob("*.json"))) - cached == 5
    # the same rows again: same descriptions (from the cache), same predictions
    assert model.predict(test)["prediction"].tolist() == first["prediction"].tolist()
    assert "accuracy" in model.evaluate(test)  # evaluate reads rows the same way
    # a row that already has the column is refused, naming it
    with pytest.raises(DataError, match="column 'seen' is already there"):
        model.predict(test.head(2).assign(seen="x"))


def test_typos_in_the_describe_block_are_refused(tiny_config, chat_vlm: Path, tmp_path: Path):
    raw = _described_config(tiny_config, tmp_path, chat_vlm, templte="brief")
    with pytest.raises(ConfigError, match="templte.*Did you mean `template`"):
        PlaitConfig.from_dict(raw)
    raw = _described_config(tiny_config, tmp_path, chat_vlm, template="breif")
    with pytest.raises(ConfigError, match="did you mean 'brief'"):
        train_run(PlaitConfig.from_dict(raw))
