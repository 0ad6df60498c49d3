"""Configs carry the schema version they were written for; older ones are migrated on
load, newer ones refused; saved folders that record no task are read by their config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from plait.config import CONFIG_VERSION, PlaitConfig, migrate_config
from plait.errors import ConfigError, PlaitError
from plait.model_folder import read_task
from plait.tasks import TASKS, task_of_folder

SAVED_V0 = Path(__file__).parent / "fixtures" / "saved_v0"


def test_a_config_without_a_version_is_migrated_to_the_current_one(tiny_config, tmp_path):
    raw = tiny_config(tmp_path)
    assert "config_version" not in raw
    config = PlaitConfig.from_dict(raw)
    assert config.config_version == CONFIG_VERSION
    written = yaml.safe_load(config.to_yaml())
    assert next(iter(written)) == "config_version" and written["config_version"] == CONFIG_VERSION
    assert PlaitConfig.from_dict(written) == config


def test_a_config_from_a_newer_plait_is_refused(tiny_config, tmp_path):
    raw = {**tiny_config(tmp_path), "config_version": CONFIG_VERSION + 1}
    with pytest.raises(ConfigError, match="newer Plait"):
        PlaitConfig.from_dict(raw, source="run.yaml")


@pytest.mark.parametrize("bad", ["one", -1, 1.5, True])
def test_a_config_version_must_be_a_whole_number(bad, tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="config_version"):
        migrate_config({**tiny_config(tmp_path), "config_version": bad})


@pytest.mark.parametrize(
    ("folder", "task"), [("supervised", "classification"), ("aligned", "alignment")]
)
def test_v0_folders_record_no_task_and_are_read_by_their_config(folder, task, tmp_path):
    copy = shutil.copytree(SAVED_V0 / folder, tmp_path / folder)
    assert read_task(copy) is None
    assert "config_version" not in yaml.safe_load((copy / "config.yaml").read_text())
    assert task_of_folder(copy) is TASKS[task]


def test_a_folder_of_an_unknown_task_says_so(tmp_path):
    copy = shutil.copytree(SAVED_V0 / "supervised", tmp_path / "supervised")
    (copy / "manifest.json").write_text(
        '{"format": "plait-model", "version": 1, "task": "question_answering", "files": {}}'
    )
    with pytest.raises(PlaitError, match="question_answering"):
        task_of_folder(copy)
