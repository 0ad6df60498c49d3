"""A question answerer given to the calls of supervised models says what to use instead."""

from __future__ import annotations

from pathlib import Path

import pytest

import plait.api
from plait.errors import PlaitError


@pytest.mark.parametrize("call", ["predict", "explain", "robustness"])
def test_a_question_answerer_points_to_plait_ask(saved_vqa: Path, call: str):
    with pytest.raises(PlaitError, match="question-answering model: use plait ask"):
        getattr(plait.api, call)(saved_vqa, [{"image": "x.png", "question": "what?"}])
