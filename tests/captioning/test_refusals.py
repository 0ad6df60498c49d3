"""A captioner given to the calls of supervised models says what to use instead."""

from __future__ import annotations

from pathlib import Path

import pytest

import plait.api
from plait.errors import PlaitError


@pytest.mark.parametrize("call", ["predict", "explain", "robustness"])
def test_a_captioner_points_to_plait_caption(tiny_captioner: Path, call: str):
    with pytest.raises(PlaitError, match="captioning model: use plait caption"):
        getattr(plait.api, call)(tiny_captioner, [{"image": "x.png"}])
