"""One context-encoder pass per distinct picture or sound of a batch: the same logits as
encoding every row, for an image and an audio context, with some rows sharing a context."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.vqa.conftest import vqa_config

from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.tasks import TASKS
from plait.tasks import vqa_model as vqa_model_module
from plait.tasks.vqa_dedup import distinct_rows

# rows 0, 1, 5 share context 0; rows 2, 3 share context 2; row 4 is alone
CONTEXT_OF_ROW = [0, 0, 2, 2, 4, 0]


def shared_batch(model, dataset) -> dict:
    """A batch of samples 0, 6, ..., 30 (six scenes of the reasoning data) whose context of
    row b is that of row CONTEXT_OF_ROW[b], while every row keeps its own question."""
    batch = dataset.collate([dataset[6 * row] for row in range(len(CONTEXT_OF_ROW))])
    rows = torch.tensor(CONTEXT_OF_ROW)
    inputs = dict(batch.inputs)
    inputs[model.context] = {k: t[rows] for k, t in batch.inputs[model.context].items()}
    return inputs


def assert_same_logits(model, inputs: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[int] = []  # rows each context-encoder pass saw
    plain = vqa_model_module.context_map

    def counted(encoder, tensors):
        encoded.append(len(next(iter(tensors.values()))))
        return plain(encoder, tensors)

    monkeypatch.setattr(vqa_model_module, "context_map", counted)
    with torch.no_grad():
        shared = model(inputs)
        monkeypatch.setattr(vqa_model_module, "distinct_rows", lambda tensors: None)
        every_row = model(inputs)
    assert encoded == [3, len(CONTEXT_OF_ROW)]  # three distinct contexts, then every row
    torch.testing.assert_close(shared, every_row, rtol=1e-5, atol=1e-6)
    assert shared.shape[0] == len(CONTEXT_OF_ROW)


def test_image_context_same_logits(
    reasoning_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    config = PlaitConfig.from_dict(vqa_config(reasoning_data, tmp_path))
    data = prepare_data(config, progress=False)
    model = TASKS["vqa"].build(config, data.processors, data.labels).eval()
    inputs = shared_batch(model, data.train)
    pixels = inputs["image"]["pixel_values"]
    first, inverse = distinct_rows(inputs["image"])
    assert len(first) == 3 and torch.equal(pixels[first][inverse], pixels)
    assert_same_logits(model, inputs, monkeypatch)


def test_audio_context_same_logits(
    tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    raw = tiny_config(tmp_path, "vqa-audio")
    del raw["modalities"]["image"], raw["head"], raw["fusion"]
    raw["modalities"]["audio"]["encoder"] = {"type": "audio_cnn", "dim": 8, "layers": 1}
    raw["vqa"] = {"head": "relation", "head_options": {"width": 8, "hidden": 8}}
    config = PlaitConfig.from_dict(raw)
    data = prepare_data(config, progress=False)
    model = TASKS["vqa"].build(config, data.processors, data.labels).eval()
    inputs = shared_batch(model, data.train)
    assert len(distinct_rows(inputs["audio"])[0]) == 3
    assert_same_logits(model, inputs, monkeypatch)


def test_distinct_rows_is_exact() -> None:
    base = torch.randn(4, 3, 5)
    assert distinct_rows({"x": base}) is None  # all distinct: nothing to save
    assert distinct_rows({"x": base[:1]}) is None
    twice = torch.cat([base, base[[2]]])  # row 4 repeats row 2
    first, inverse = distinct_rows({"x": twice})
    assert len(first) == 4 and inverse[4] == inverse[2] and first[inverse[4]] == 2
    nudged = twice.clone()
    nudged[4, 0, 0] = torch.nextafter(nudged[4, 0, 0], torch.tensor(1e9))  # one ulp
    assert distinct_rows({"x": nudged}) is None
    zeros = torch.zeros(2, 3)
    zeros[1, 0] = -0.0
    assert distinct_rows({"x": zeros}) is None  # -0.0 is not 0.0 bit for bit
    # equal in one tensor of the context, not in the other: distinct
    mask = torch.tensor([[1, 1], [1, 0], [1, 1]])
    same = {"values": torch.ones(3, 2), "attention_mask": mask}
    first, inverse = distinct_rows(same)
    assert inverse.tolist()[0] == inverse.tolist()[2] != inverse.tolist()[1]
