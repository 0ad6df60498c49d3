"""Prompt templates and the options -> backend factory (refusals before anything runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.errors import ConfigError
from plait.vlm.backends import make_backend, vlm_config
from plait.vlm.prompts import TEMPLATES, render, template_text


def test_named_and_custom_templates() -> None:
    assert template_text() == TEMPLATES["brief"]
    assert render(template_text("brief"), "audio") == "Describe this sound in one short sentence."
    text = render(template_text("label"), "image", ["cat", "dog"])
    assert "picture" in text and "cat, dog" in text
    assert render(template_text(prompt="What is in this {kind}?"), "image") == (
        "What is in this picture?"
    )


def test_prompt_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("Name the {kind}.\n")
    assert template_text(prompt=f"@{tmp_path / 'p.txt'}") == "Name the {kind}."
    with pytest.raises(ConfigError, match="cannot be read"):
        template_text(prompt=f"@{tmp_path / 'missing.txt'}")


def test_unknown_template_and_fields_are_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="unknown prompt template 'breif'; did you mean 'brief'"):
        template_text("breif")
    with pytest.raises(ConfigError, match=r"unknown field \{clases\}; did you mean '\{classes\}'"):
        template_text(prompt="one of {clases}")
    with pytest.raises(ConfigError, match="no classes were given"):
        render(TEMPLATES["label"], "image")


def test_openai_needs_a_base_url_and_typos_are_refused() -> None:
    with pytest.raises(ConfigError, match="needs `base_url`.*no default"):
        vlm_config(model="gpt-4o-mini", provider="openai")
    with pytest.raises(ConfigError, match="`base_url` is for provider `openai`"):
        vlm_config(model="x", base_url="http://localhost:1/v1")
    with pytest.raises(ConfigError, match="`provider`.*Did you mean `openai`"):
        vlm_config(model="x", provider="opnai")


def test_openai_backend_is_cached_unless_told_not_to(tmp_path: Path) -> None:
    from plait.vlm.cache import CachedBackend
    from plait.vlm.openai_chat import OpenAIChatBackend

    options = {"model": "m", "provider": "openai", "base_url": "http://127.0.0.1:9/v1"}
    cached = make_backend(vlm_config(**options, api_key_env=None, cache_dir=str(tmp_path)))
    assert isinstance(cached, CachedBackend) and cached.cache_dir == tmp_path
    assert isinstance(cached.backend, OpenAIChatBackend)
    plain = make_backend(vlm_config(**options, api_key_env=None, cache=False))
    assert isinstance(plain, OpenAIChatBackend)
