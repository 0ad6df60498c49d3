"""The captioning part of a run report: the caption metrics (test and validation side by
side) and a sheet of test pictures or sounds with the generated caption above the
reference captions. Pictures and sounds are inlined (data URIs), so the page stays one
file; a file that cannot be read shows why instead."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from plait.evaluation.html import CaptionCard, CaptionSheet, HtmlTable, Note, Section, fmt

METRIC_NAMES = {
    "bleu_1": "BLEU-1", "bleu_2": "BLEU-2", "bleu_3": "BLEU-3", "bleu_4": "BLEU-4",
    "rouge_l": "ROUGE-L", "cider_d": "CIDEr-D", "meteor": "METEOR",
}  # fmt: skip
MAX_AUDIO_BYTES = 400_000  # a longer clip is named, not embedded
THUMBNAIL = 128


def captioning_sections(metrics: dict[str, Any]) -> list[Section]:
    """Metric table and example sheet from `CaptioningPredictor.evaluate`'s metrics (with
    `valid` beside them after a run)."""
    columns = [("this split", metrics)]
    if isinstance(metrics.get("valid"), dict):
        columns = [(f"{metrics.get('split', 'test')}", metrics), ("valid", metrics["valid"])]
    rows = [
        [label, *(fmt(values.get(key)) for _, values in columns)]
        for key, label in METRIC_NAMES.items()
        if any(key in values for _, values in columns)
    ]
    blocks: list[Any] = [HtmlTable(["metric", *(name for name, _ in columns)], rows)]
    notes = [f"{name}: {why}" for name, why in (metrics.get("skipped_metrics") or {}).items()]
    decoding = metrics.get("decoding") or {}
    if decoding:
        shown = ", ".join(f"{k}={v}" for k, v in decoding.items() if v is not None)
        notes.append(f"decoding: {shown}")
    blocks += [Note(line, "notes") for line in notes]
    sections = [Section("Caption metrics", blocks)]
    examples = metrics.get("examples") or []
    if examples:
        cards = [_card(example) for example in examples]
        sections.append(Section("Captions", [
            Note("Generated caption in bold, the reference captions below it."),
            CaptionSheet(cards),
        ]))  # fmt: skip
    return sections


def _card(example: dict[str, Any]) -> CaptionCard:
    card = CaptionCard(
        id=str(example.get("id")),
        generated=str(example.get("generated", "")),
        references=[str(r) for r in example.get("references", [])],
    )
    path = Path(str(example.get("file", "")))
    try:
        if example.get("kind") == "audio":
            data = path.read_bytes()
            if len(data) > MAX_AUDIO_BYTES:
                card.problem = f"{path.name} (too long to embed)"
            else:
                mime = "audio/wav" if path.suffix.lower() == ".wav" else "audio/mpeg"
                card.audio = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        else:
            card.image = _thumbnail(path)
    except (OSError, ValueError) as exc:
        card.problem = f"{path.name}: {exc}"
    return card


def _thumbnail(path: Path) -> str:
    """A data URI of the picture, at most THUMBNAIL pixels a side."""
    from plait.data.image import load_image

    image = load_image(path, 10**8, 3)
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"
