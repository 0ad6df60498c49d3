"""The rule that maps a free-text reply onto one of the allowed answers."""

from __future__ import annotations

import pytest

from plait.vlm.choices import NO_CHOICE, choice_prompt, match_choice

CHOICES = ("cat", "dog", "sea lion", "lion")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("cat", "cat"),
        ("  DOG. ", "dog"),
        ('"Sea Lion"', "sea lion"),
        ("It is a cat.", "cat"),
        ("I see a sea lion on a rock", "sea lion"),  # "lion" is part of "sea lion"
        ("a lion", "lion"),
        ("a cat and a dog", NO_CHOICE),  # two answers: ambiguous
        ("a bird", NO_CHOICE),
        ("category", NO_CHOICE),  # "cat" only inside another word
        ("", NO_CHOICE),
    ],
)
def test_replies_map_to_one_choice_or_the_marker(reply: str, expected: str) -> None:
    assert match_choice(reply, CHOICES) == expected


def test_the_prompt_lists_every_choice() -> None:
    text = choice_prompt("What animal is this?", CHOICES)
    assert text.startswith("What animal is this?") and "cat, dog, sea lion, lion" in text
