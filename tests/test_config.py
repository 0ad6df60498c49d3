"""Config: validation messages name the key and suggest a fix; YAML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.config import PlaitConfig, apply_override
from plait.errors import ConfigError


def _raw(**changes):
    raw = {
        "data": {"train": "train.csv", "label": "y"},
        "modalities": {
            "review": {"kind": "text", "column": "text"},
            "photo": {"kind": "image", "column": "path"},
        },
    }
    raw.update(changes)
    return raw


def test_minimal_config_gets_defaults():
    config = PlaitConfig.from_dict(_raw())
    assert config.fusion.method == "concat"
    assert config.modalities["review"].encoder.type == "text_cnn"
    assert config.modalities["photo"].encoder.type == "image_cnn"
    assert config.label_columns == ["y"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        (_raw(trainig={}), "unknown key `trainig`. Did you mean `training`?"),
        (_raw(fusion={"method": "gate"}), "Did you mean `gated`?"),
        (
            _raw(modalities={"review": {"kind": "text", "colum": "t"}}),
            "unknown key `modalities.review.colum`. Did you mean `column`?",
        ),
        (_raw(training={"epochs": "many"}), "`training.epochs`"),
        (_raw(training={"lr": -1}), "`training.lr`"),
        (
            _raw(
                modalities={"x": {"kind": "text", "column": "t", "encoder": {"type": "image_cnn"}}}
            ),
            "cannot encode text",
        ),
        (
            _raw(
                modalities={
                    "x": {"kind": "image", "column": "p", "encoder": {"type": "huggingface"}}
                }
            ),
            "needs `model:`",
        ),
        (
            _raw(
                modalities={"x": {"kind": "text", "column": "t", "encoder": {"type": "text_gru2"}}}
            ),
            "`modalities.x.encoder.type`: `text_gru2` is not one of 'text_cnn', 'text_gru', "
            "'text_transformer', 'image_cnn', 'image_lenet', 'audio_cnn', 'audio_lenet', "
            "'audio_transformer', 'huggingface'. Did you mean `text_gru`?",
        ),
        (
            _raw(
                modalities={"x": {"kind": "image", "column": "p", "encoder": {"type": "audio_cnn"}}}
            ),
            "cannot encode images; for image: image_cnn, image_lenet, huggingface",
        ),
        (_raw(fusion={"method": "low_rnk"}), "`fusion.method`: `low_rnk` is not one of"),
        (_raw(modalities={}), "`modalities` is empty"),
        (
            _raw(modalities={"photo": {"kind": "imag", "column": "p"}}),
            "`modalities.photo.kind`: `imag` is not one of 'text', 'image', 'audio'. "
            "Did you mean `image`?",
        ),
        (_raw(modalities={"photo": {"column": "p"}}), "`modalities.photo.kind` is required"),
        (_raw(data={"train": "t.csv", "label": "y", "on_error": "skp"}), "Did you mean `skip`?"),
        (
            _raw(data={"train": "t.csv", "label": "y", "split": {"method": "stratifed"}}),
            "Did you mean `stratified`?",
        ),
    ],
)
def test_errors_name_the_key_and_suggest(raw, expected):
    with pytest.raises(ConfigError) as info:
        PlaitConfig.from_dict(raw, source="my.yaml")
    assert expected in str(info.value)
    assert str(info.value).startswith("my.yaml:")


def test_group_split_needs_group_column():
    raw = _raw()
    raw["data"]["split"] = {"method": "group"}
    with pytest.raises(ConfigError, match="data.group"):
        PlaitConfig.from_dict(raw)


def test_yaml_round_trip_and_relative_paths(tmp_path: Path):
    folder = tmp_path / "project"
    folder.mkdir()
    path = folder / "run.yaml"
    path.write_text(
        "data: {train: data/train.csv, label: y}\n"
        "modalities:\n  t: {kind: text, column: text}\n"
        "fusion: {method: gated, dim: 32}\n"
    )
    config = PlaitConfig.from_yaml(path, overrides=["training.lr=0.01", "fusion.dim=16"])
    assert config.data.train == str((folder / "data" / "train.csv").resolve())
    assert config.training.lr == 0.01 and config.fusion.dim == 16
    saved = tmp_path / "saved.yaml"
    config.to_yaml(saved)
    again = PlaitConfig.from_yaml(saved)
    assert again == config


def test_yaml_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        PlaitConfig.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        PlaitConfig.from_yaml(bad)
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_override({}, "nonsense")
