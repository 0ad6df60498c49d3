"""Named prompts for describing and labelling, so a command line says `--template caption`
instead of pasting a paragraph, and a saved model records the exact text it was given.

A template is plain text with `{kind}` (`picture` or `sound`, from the media) and, for
labelling, `{classes}` (the class names, comma-separated). A custom template is any string
(from `--prompt` or a file) with the same fields; an unknown field is refused by name.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Sequence
from pathlib import Path

from plait.errors import ConfigError

#: the named templates; `label` is the one used when classes are given
TEMPLATES: dict[str, str] = {
    "brief": "Describe this {kind} in one short sentence.",
    "detailed": (
        "Describe this {kind} in detail: what it shows or contains, the main objects or "
        "sounds, their colours, positions or qualities, and anything unusual."
    ),
    "caption": "Write a caption for this {kind}, as a short phrase without a full stop.",
    "label": (
        "Which one of these classes does this {kind} belong to: {classes}? "
        "Answer with the class name only."
    ),
}
FIELDS = frozenset({"kind", "classes"})
KIND_WORDS = {"image": "picture", "audio": "sound"}


def template_text(name: str | None = None, *, prompt: str | None = None) -> str:
    """The template text: `prompt` itself if given (a string, or `@FILE` to read one),
    else the named template. Unknown names and fields are `ConfigError`s."""
    if prompt is not None:
        text = _read_prompt(prompt)
    else:
        name = name or "brief"
        if name not in TEMPLATES:
            close = difflib.get_close_matches(name, list(TEMPLATES), n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown prompt template '{name}'{hint} (templates: {', '.join(TEMPLATES)}; "
                "or give your own text with --prompt)"
            )
        text = TEMPLATES[name]
    check_fields(text)
    return text


def _read_prompt(prompt: str) -> str:
    if not prompt.startswith("@"):
        if not prompt.strip():
            raise ConfigError("the prompt is empty")
        return prompt
    path = Path(prompt[1:]).expanduser()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"prompt file {path}: cannot be read ({error})") from error
    if not text:
        raise ConfigError(f"prompt file {path}: the file is empty")
    return text


def check_fields(text: str) -> None:
    """Refuse a template with a field Plait does not fill (a typo like `{clases}`)."""
    try:
        names = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as error:
        raise ConfigError(f"prompt {text!r}: {error} (write {{{{ and }}}} for braces)") from error
    unknown = sorted(names - FIELDS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(FIELDS), n=1, cutoff=0.5)
        hint = f"; did you mean '{{{close[0]}}}'?" if close else ""
        raise ConfigError(
            f"prompt {text!r}: unknown field {{{unknown[0]}}}{hint} (fields: {{kind}}, {{classes}})"
        )


def render(text: str, kind: str = "image", classes: Sequence[str] | None = None) -> str:
    """The prompt for one request: `{kind}` from the media, `{classes}` from the class list."""
    if "{classes}" in text and not classes:
        raise ConfigError(f"prompt {text!r} asks for {{classes}} but no classes were given")
    return text.format(kind=KIND_WORDS.get(kind, kind), classes=", ".join(classes or ()))
