"""Pretrained model names that cannot be loaded fail within seconds with one clear error
(modality, name, what to do), instead of minutes of download retries and a traceback.
The hub is never contacted here: online answers are simulated."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
import transformers as tf
from huggingface_hub import constants
from huggingface_hub.errors import RepositoryNotFoundError

from plait.config import EncoderConfig
from plait.encoders import HFTextEncoder
from plait.encoders.dual import dual_checkpoint_type
from plait.encoders.hub import check_hub_model
from plait.errors import ConfigError


@pytest.fixture()
def online(monkeypatch: pytest.MonkeyPatch):
    """Hub access allowed; `answer(exc)` makes the (simulated) hub lookup raise `exc`."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    calls: list[str] = []

    def answer(exc: Exception | None) -> list[str]:
        def model_info(self, repo_id: str, **kwargs):
            calls.append(repo_id)
            assert kwargs.get("timeout") and kwargs["timeout"] <= 10
            if exc is not None:
                raise exc
            return object()

        monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
        return calls

    return answer


def test_unknown_name_offline_fails_at_once(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        check_hub_model("sentence-transformers/all-MiniLM-L6-v3", "caption")
    assert time.perf_counter() - start < 2
    message = str(caught.value)
    assert "modality `caption`" in message and "all-MiniLM-L6-v3" in message
    assert "HF_HUB_OFFLINE" in message and "typo" in message and "local folder" in message


def test_unknown_name_online_is_named_as_unknown(online):
    calls = online(
        RepositoryNotFoundError(
            "404", response=httpx2.Response(404, request=httpx2.Request("GET", "https://hub"))
        )
    )
    with pytest.raises(ConfigError, match=r"does not exist on the Hugging Face hub.*typo"):
        check_hub_model("no-such-org/no-such-model", "image")
    assert calls == ["no-such-org/no-such-model"]


def test_unreachable_hub_fails_at_once_with_what_to_do(online):
    online(httpx2.ConnectError("[Errno -2] Name or service not known"))
    with pytest.raises(ConfigError) as caught:
        check_hub_model("bert-base-uncased", "caption")
    message = str(caught.value)
    assert "could not be reached (" in message and "Name or service not known" in message
    assert "HF_HUB_OFFLINE=1" in message and "local folder" in message


def test_known_name_online_passes(online):
    assert online(None) is not None
    check_hub_model("bert-base-uncased", "caption")


def test_cached_name_needs_no_lookup(online, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    calls = online(AssertionError("the hub was asked"))
    cached = str(tmp_path / "config.json")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: cached)
    check_hub_model("bert-base-uncased", "caption")
    assert calls == []


def test_local_folders_are_checked_on_disk(tmp_path: Path):
    model = tmp_path / "bert"
    tf.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1).save_pretrained(model)
    check_hub_model(str(model), "caption")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="folder without config.json"):
        check_hub_model(str(tmp_path / "empty"), "caption")
    with pytest.raises(ConfigError, match=r"'./models/my-bert': no such folder"):
        check_hub_model("./models/my-bert", "caption")
    with pytest.raises(ConfigError, match="neither a local folder nor a valid Hugging Face name"):
        check_hub_model("bert base uncased", "caption")


def test_encoders_and_dual_heads_fail_fast_on_an_unknown_name(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = EncoderConfig(type="huggingface", model="no-such-org/no-such-model")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="no-such-org/no-such-model"):
        HFTextEncoder(config)
    with pytest.raises(ConfigError, match="no-such-org/no-such-model"):
        dual_checkpoint_type("no-such-org/no-such-model")
    assert time.perf_counter() - start < 2
