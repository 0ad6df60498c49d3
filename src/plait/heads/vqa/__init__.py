"""Answer heads for visual (or audio) question answering, picked by `vqa.head`.

Every head reads the context modality as a feature map and the question as token states
(see `plait.heads.vqa.base.VqaHead`) and returns answer logits. The table names each
head's class by import path, so a head's module is imported only when it is built.
"""

from __future__ import annotations

import importlib
from typing import Any

from plait.heads.vqa.base import VqaHead

#: `vqa.head` name -> "module:Class"; each class has a pydantic `Options` for its settings
VQA_HEADS: dict[str, str] = {
    "fusion": "plait.heads.vqa.fusion_head:FusionHead",
    "film": "plait.heads.vqa.film:FilmHead",
    "relation": "plait.heads.vqa.relation:RelationHead",
    "transformer": "plait.heads.vqa.transformer:TransformerHead",
}


def vqa_head_class(name: str) -> type[VqaHead]:
    """The head class registered as `name` (a `ValueError` listing the valid names)."""
    if name not in VQA_HEADS:
        raise ValueError(f"unknown VQA head {name!r}; valid heads: {', '.join(VQA_HEADS)}")
    module_name, class_name = VQA_HEADS[name].split(":")
    head: Any = getattr(importlib.import_module(module_name), class_name)
    return head  # type: ignore[no-any-return]


__all__ = ["VQA_HEADS", "VqaHead", "vqa_head_class"]
