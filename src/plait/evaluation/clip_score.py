"""A reference-free caption score from a Plait aligned model (CLIPScore, Hessel et al. 2021).

`w * max(cos(media, caption), 0)` with w = 2.5, the paper's scaling, computed with the
model's own towers: how well a caption fits its picture or sound by the model's judgement,
with no reference captions. Only as good as the aligned model: scores from a weak model
rank captions weakly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plait.errors import PlaitError
from plait.tasks.aligned_predictor import AlignedPredictor

CLIP_SCORE_WEIGHT = 2.5


def clip_score(
    model: AlignedPredictor,
    media: Sequence[Any],
    captions: Sequence[str],
    *,
    weight: float = CLIP_SCORE_WEIGHT,
    base_dir: str | Path = ".",
    batch_size: int = 64,
) -> np.ndarray:
    """One score per (media, caption) pair [N]: the media (file paths, array cells) go
    through the model's non-text tower, the captions through its text tower."""
    if len(media) != len(captions):
        raise PlaitError(f"{len(media)} media values but {len(captions)} captions: give one each")
    if len(captions) == 0:
        raise PlaitError("no captions to score")
    text = model.text_modality()
    other = next(name for name in model.pair if name != text)
    scores = []
    for start in range(0, len(captions), batch_size):
        end = start + batch_size
        a = model.embed_values(other, list(media[start:end]), base_dir=base_dir)
        b = model.embed_values(text, list(captions[start:end]))
        scores.append((a * b).sum(1))  # both unit vectors: cosine per pair
    return weight * np.clip(np.concatenate(scores), 0.0, None)
