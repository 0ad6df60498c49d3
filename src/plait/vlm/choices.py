"""Constrained answers for labelling: ask for one of a list, map the reply back onto it.

A large model answers in free text even when told to pick from a list ("It is a cat.").
The rule, shared by every backend so labels mean the same everywhere:

1. the reply, stripped of spaces, quotes and final punctuation, equals a choice ignoring
   case -> that choice;
2. otherwise exactly one choice appears in the reply as a whole word or phrase (ignoring
   case) -> that choice; when several appear, the longest wins only if the others are
   part of it ("sea lion" over "lion"), else the reply is ambiguous;
3. otherwise -> `NO_CHOICE`, never a guessed label: accuracy counts it as wrong and the
   row can be inspected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: what a backend returns when the reply names none of the choices (or several)
NO_CHOICE = "<no choice>"


def choice_prompt(prompt: str, choices: Sequence[str]) -> str:
    """`prompt` followed by the instruction to answer with exactly one of `choices`."""
    listed = ", ".join(choices)
    return f"{prompt}\n\nAnswer with exactly one of: {listed}. Reply with the answer only."


def match_choice(reply: str, choices: Sequence[str]) -> str:
    """The choice `reply` names by the rule above, or `NO_CHOICE`."""
    cleaned = reply.strip().strip("\"'`*").rstrip(".!?,;:").strip().casefold()
    for choice in choices:
        if cleaned == choice.strip().casefold():
            return choice
    found = [c for c in choices if _contains(reply, c)]
    if not found:
        return NO_CHOICE
    longest = max(found, key=len)
    if all(_contains(longest, other) for other in found):
        return longest
    return NO_CHOICE


def _contains(text: str, phrase: str) -> bool:
    """Whether `phrase` occurs in `text` as whole words, ignoring case."""
    phrase = phrase.strip()
    if not phrase:
        return False
    pattern = r"(?<!\w)" + re.escape(phrase) + r"(?!\w)"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None
