"""CLIPScore from an aligned model: the formula on known vectors, and a trained model
scores a picture's own caption above another picture's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plait.api import train_run
from plait.config import PlaitConfig
from plait.errors import PlaitError
from plait.evaluation.clip_score import clip_score

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


class KnownVectors:
    """Stands in for an aligned predictor: fixed unit vectors per value."""

    pair = ("image", "text")

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors
        self.calls: list[int] = []

    def text_modality(self) -> str:
        return "text"

    def embed_values(self, modality, values, *, base_dir="."):
        self.calls.append(len(values))
        return np.stack([self.vectors[v] for v in values])


def test_weighted_cosine_clipped_at_zero_in_batches() -> None:
    s = np.sqrt(0.5)
    model = KnownVectors(
        {
            "a.png": np.array([1.0, 0.0]),
            "b.png": np.array([0.0, 1.0]),
            "up": np.array([s, s]),
            "down": np.array([0.0, -1.0]),
        }  # fmt: skip
    )
    scores = clip_score(model, ["a.png", "b.png", "b.png"], ["up", "up", "down"], batch_size=2)
    assert scores == pytest.approx([2.5 * s, 2.5 * s, 0.0])
    assert model.calls == [2, 2, 1, 1]  # two batches, each tower once per batch


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(PlaitError, match="2 media values but 1 captions"):
        clip_score(KnownVectors({}), ["a", "b"], ["x"])


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("clip_colours")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(72):
        name = list(COLOURS)[i % 3]
        pixels = np.array(COLOURS[name]) + rng.normal(0, 20, (16, 16, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / f"{i}.png")
        rows.append({"id": str(i), "text": f"a {name} square", "image": f"{i}.png"})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    config = PlaitConfig.from_dict(
        {
            "name": "clip_score",
            "output_dir": str(root / "runs"),
            "data": {
                "train": str(root / "train.csv"),
                "id": "id",
                "split": {"method": "random", "valid": 0.2, "test": 0.0},
            },  # fmt: skip
            "modalities": {
                "text": {
                    "kind": "text",
                    "column": "text",
                    "encoder": {"type": "text_cnn", "dim": 16},
                },  # fmt: skip
                "image": {
                    "kind": "image",
                    "column": "image",
                    "size": 16,
                    "augment": False,
                    "encoder": {"type": "image_cnn", "dim": 16, "layers": 1},
                },  # fmt: skip
            },
            "alignment": {"dim": 16},
            "training": {
                "epochs": 6,
                "batch_size": 12,
                "lr": 5e-3,
                "progress": False,
                "tensorboard": False,
                "threads": 1,
                "accelerator": "cpu",
                "seed": 0,
            },  # fmt: skip
        }
    )
    return train_run(config).predictor, root


def test_a_trained_model_prefers_each_pictures_own_caption(colour_model) -> None:
    model, root = colour_model
    names = list(COLOURS)
    media = [str(root / f"{i}.png") for i in range(60, 72)]
    own = [f"a {names[i % 3]} square" for i in range(60, 72)]
    other = [f"a {names[(i + 1) % 3]} square" for i in range(60, 72)]
    right, wrong = clip_score(model, media, own), clip_score(model, media, other)
    assert (right >= 0).all() and (right <= 2.5).all()
    assert right.mean() > wrong.mean() + 0.2
