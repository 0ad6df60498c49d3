"""Processors come from the explicit `PROCESSORS` table, one row per modality kind."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from plait.config import AudioModality, ImageModality, ModalityConfig, TextModality
from plait.data.audio import AudioProcessor
from plait.data.image import ImageProcessor
from plait.data.processor import PROCESSORS, build_processor, load_processor
from plait.data.processor_base import Processor
from plait.data.text import TextProcessor


def test_every_config_kind_has_exactly_one_row() -> None:
    union = typing.get_args(ModalityConfig)[0]  # Annotated[A | B | C, Field(...)]
    kinds = {
        typing.get_args(model.model_fields["kind"].annotation)[0]
        for model in typing.get_args(union)
    }
    assert len(kinds) == 3
    assert set(PROCESSORS) == kinds
    assert {kind: cls.kind for kind, cls in PROCESSORS.items()} == {k: k for k in kinds}


def test_subclassing_registers_nothing() -> None:
    class Video(Processor):
        kind = "video"

    assert "video" not in PROCESSORS
    assert not hasattr(Processor, "_registry")


@pytest.mark.parametrize(
    ("config", "cls"),
    [
        (TextModality(column="t"), TextProcessor),
        (ImageModality(column="i"), ImageProcessor),
        (AudioModality(column="a"), AudioProcessor),
    ],
)
def test_build_save_and_restore_each_kind(config, cls, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    processor = build_processor(config)
    assert type(processor) is cls
    processor.save(tmp_path / "p")
    assert type(load_processor(tmp_path / "p")) is cls
    assert type(cls.load_state(tmp_path / "p")) is cls


def test_a_kind_restores_only_its_own_folders(tmp_path: Path) -> None:
    build_processor(TextModality(column="t")).save(tmp_path / "p")
    with pytest.raises(ValueError, match="holds a 'text' processor.*load_processor"):
        ImageProcessor.load_state(tmp_path / "p")
