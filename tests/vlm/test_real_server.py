"""The client against a real OpenAI-compatible server: transformers' own `serve` command
on loopback, offline, serving a tiny random-init LLaVA saved in a temporary folder.

The model's words are random, so the check is that the server's answer is exactly what
the same model generates in this process for the same picture and prompt (greedy), which
proves the picture travelled intact and the reply was read back right.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from plait.vlm.base import Media, VlmRequest
from plait.vlm.choices import choice_prompt, match_choice
from plait.vlm.errors import ServerFailed, UnknownModel, VlmError
from plait.vlm.openai_chat import OpenAIChatBackend

from .conftest import save_tiny_llava, write_png

STARTUP_S = 120  # importing torch + transformers on 2 busy cores


def _serving_available() -> bool:
    from transformers.utils.import_utils import is_serve_available

    return is_serve_available()


@pytest.fixture(scope="module")
def served_llava(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base_url, model folder) of a `transformers serve` process and the tiny LLaVA."""
    if not _serving_available():
        reason = "transformers serve needs its serving extra: pip install -e '.[dev]'"
        if os.environ.get("PLAIT_REQUIRE_VLM_SERVER"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("served-llava")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = root / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # Not pinned to a model: the server starts (imports) while this process builds the
    # model, and loads it from its folder on the first request that names it.
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve",
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]  # fmt: skip
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        folder = save_tiny_llava(root / "tiny-llava")
        _wait_until_healthy(server, port, log_path)
        yield f"http://127.0.0.1:{port}/v1", folder
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_healthy(server: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"transformers serve exited ({server.returncode}):\n{log_path.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"transformers serve not up after {STARTUP_S} s:\n{log_path.read_text()}")


def _generate_here(folder: Path, picture: Path, prompt: str, max_new_tokens: int) -> str:
    import torch
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(folder)
    model = LlavaForConditionalGeneration.from_pretrained(folder).eval()
    content = [{"type": "image", "image": Image.open(picture)}, {"type": "text", "text": prompt}]
    inputs = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True,
        return_dict=True, return_tensors="pt",
    )  # fmt: skip
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[:, inputs["input_ids"].shape[1] :]  # (1, generated)
    return str(processor.batch_decode(new, skip_special_tokens=True)[0]).strip()


def test_transformers_serve_describes_and_labels_pictures(
    served_llava: tuple[str, Path], tmp_path: Path
) -> None:
    base_url, folder = served_llava
    red = write_png(tmp_path / "red.png", (255, 0, 0))
    blue = write_png(tmp_path / "blue.png", (0, 0, 255))
    choices = ("cat", "dog", "red")
    requests = [
        VlmRequest(media=(Media.from_path(red),), prompt="describe this picture", max_new_tokens=6),
        VlmRequest(media=(Media.from_path(blue),), prompt="what is this", max_new_tokens=6),
        VlmRequest(
            media=(Media.from_path(blue),), prompt="what is this", choices=choices, max_new_tokens=3
        ),  # fmt: skip
    ]
    client = OpenAIChatBackend(base_url, str(folder), api_key_env=None, concurrency=2)
    answers = client.generate(requests)

    expected = [
        _generate_here(folder, red, "describe this picture", 6),
        _generate_here(folder, blue, "what is this", 6),
        match_choice(_generate_here(folder, blue, choice_prompt("what is this", choices), 3), choices),
    ]  # fmt: skip
    assert answers[0] and answers == expected


def test_transformers_serve_without_the_model(
    served_llava: tuple[str, Path], tmp_path: Path
) -> None:
    base_url, _ = served_llava
    client = OpenAIChatBackend(
        base_url, str(tmp_path / "no-such-model"), api_key_env=None, max_retries=0
    )
    picture = write_png(tmp_path / "cat.png")
    with pytest.raises(VlmError) as caught:
        client.generate([VlmRequest(media=(Media.from_path(picture),), prompt="describe")])
    assert isinstance(caught.value, UnknownModel | ServerFailed)  # this server answers 500
    assert str(picture) in str(caught.value) and "HTTP" in str(caught.value)
