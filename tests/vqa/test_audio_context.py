"""A sound as the context: the audio CNN's (mel x time) map reaches the head; a question
about the demo clips (its caption column standing in) is answered from its label."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.tasks import TASKS
from plait.tasks.vqa_model import context_map
from plait.tasks.vqa_predictor import VqaPredictor


@pytest.mark.parametrize("encoder", ["audio_cnn", "audio_transformer"])
def test_audio_context_builds_answers_and_reloads(
    demo_data: Path, tiny_config, tmp_path: Path, encoder: str
) -> None:
    raw = tiny_config(tmp_path, "vqa-audio")
    del raw["modalities"]["image"], raw["head"], raw["fusion"]
    raw["modalities"]["audio"]["encoder"] = {"type": encoder, "dim": 8, "layers": 1, "heads": 2}
    raw["vqa"] = {"head_options": {"dim": 8, "hidden": 8, "pool_side": 2}}
    config = PlaitConfig.from_dict(raw)
    assert config.vqa_pair == ("audio", "caption")
    data = prepare_data(config, progress=False)
    model = TASKS["vqa"].build(config, data.processors, data.labels).eval()
    batch = next(iter(DataLoader(data.train, batch_size=4, collate_fn=data.train.collate)))
    grid, mask = context_map(model.encoders["audio"], batch.inputs["audio"])
    assert grid.dim() == 4 and grid.shape[:2] == (4, 8) and mask is None
    with torch.no_grad():
        assert model(batch.inputs).shape == (4, data.labels.num_outputs)
    predictor = VqaPredictor(model, config, data.processors, data.labels)
    answers = predictor.ask(demo_data / "test.csv", top_k=2)
    assert len(answers) == len(pd.read_csv(demo_data / "test.csv"))
    again = VqaPredictor.load(predictor.save(tmp_path / "model"))
    pd.testing.assert_frame_equal(again.ask(demo_data / "test.csv", top_k=2), answers)
