"""`vqa.group_questions: k`: training batches come in chunks of k questions about one picture;
validation and other tasks keep the plain sampler."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from tests.vqa.conftest import vqa_config

from plait.config import PlaitConfig
from plait.data import EpochSampler, prepare_data
from plait.data.grouped_sampler import GroupedEpochSampler
from plait.datasets.reasoning import generate_reasoning
from plait.training.datamodule import PlaitDataModule, question_groups


@pytest.fixture(scope="module")
def reasoning_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reasoning")
    generate_reasoning(root, n_train=6, n_valid=1, n_test=1, seed=0, questions=6)
    return root


def test_training_batches_hold_chunks_of_one_picture(reasoning_data: Path, tmp_path: Path) -> None:
    raw = vqa_config(reasoning_data, tmp_path, group_questions=3)
    config = PlaitConfig.from_dict({**raw, "data": {**raw["data"], "on_error": "skip"}})
    assert question_groups(config) == ("image", 3)
    data = prepare_data(config, progress=False)
    module = PlaitDataModule(data, config.training, *question_groups(config))
    loader = module.train_dataloader()
    assert isinstance(loader.sampler, GroupedEpochSampler)
    assert isinstance(module.val_dataloader().sampler, EpochSampler)
    scenes = pd.read_csv(reasoning_data / "train.csv", dtype=str).set_index("id")["scene"]
    seen = [row_id for batch in loader for row_id in batch.ids]
    assert sorted(seen) == sorted(scenes.index)  # every question once
    # 6 questions a scene in chunks of 3: rows 3c..3c+2 of the epoch share a scene
    for start in range(0, len(seen), 3):
        assert scenes[seen[start : start + 3]].nunique() == 1


def test_default_and_other_tasks_keep_the_plain_shuffle(reasoning_data: Path, tmp_path: Path,
                                                        tiny_config) -> None:  # fmt: skip
    config = PlaitConfig.from_dict(vqa_config(reasoning_data, tmp_path))
    assert config.vqa is not None and config.vqa.group_questions == 1
    assert question_groups(config) == (None, 1)
    assert question_groups(PlaitConfig.from_dict(tiny_config(tmp_path))) == (None, 1)
