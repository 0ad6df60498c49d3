"""A shuffled training batch keeps each row's picture, question and answer together.

Built through the path training uses (`prepare_data`, the data module's epoch-shuffled
loader, `collate`), then checked against the manifest: the pixels are those of the row's
own picture file, the question ids decode to its question, the target is its answer in
the saved answer space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from plait.config import PlaitConfig
from plait.data import prepare_data
from plait.data.labels import UNKNOWN_ANSWER, AnswerSpace
from plait.training.datamodule import PlaitDataModule

from .conftest import vqa_config


def reference_pixels(path: Path, size: int) -> torch.Tensor:
    """The picture read and normalised independently of Plait: [3, size, size]."""
    image = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (array - 0.5) / 0.5


@pytest.mark.parametrize("split", ["train", "valid"])
def test_batch_rows_keep_picture_question_and_answer(
    reasoning_data: Path, tmp_path: Path, split: str
) -> None:
    config = PlaitConfig.from_dict(vqa_config(reasoning_data, tmp_path))
    data = prepare_data(config, progress=False)
    assert isinstance(data.labels, AnswerSpace)
    vocab = data.processors["question"].vocab  # type: ignore[attr-defined]
    assert {"red", "green", "blue", "yellow", "purple", "white"} <= set(vocab.itos)
    module = PlaitDataModule(data, config.training)
    loader = module.train_dataloader() if split == "train" else module.val_dataloader()
    batch = next(iter(loader))
    assert batch.labels is not None
    rows = pd.read_csv(reasoning_data / f"{split}.csv", dtype=str).set_index("id")
    if split == "train":  # the loader shuffles: a row-order bug would show here
        assert batch.ids != list(rows.index[: len(batch.ids)])
    for index, row_id in enumerate(batch.ids):
        row = rows.loc[row_id]
        pixels = batch.inputs["image"]["pixel_values"][index]
        assert torch.allclose(
            pixels, reference_pixels(reasoning_data / row["image"], 32), atol=1e-5
        )
        ids = batch.inputs["question"]["input_ids"][index]
        mask = batch.inputs["question"]["attention_mask"][index].bool()
        words = " ".join(vocab.decode(ids[mask].tolist()))
        assert words.replace(" ?", "?").replace(" ,", ",") == row["question"]
        target = int(batch.labels[index])
        if target == UNKNOWN_ANSWER:  # an answer training never saw (tiny valid split)
            assert row["answer"] not in data.labels.names
        else:
            assert data.labels.names[target] == row["answer"]
