"""Servers the large-model client talks to in tests, all on loopback.

`fake_chat` is a small scripted chat-completions endpoint for what a real server cannot
be made to do on purpose (429 with Retry-After, 500s, a hang, 401, audio input), and it
counts requests and how many were in flight at once. `save_tiny_llava` builds the
random-init vision-language model that `transformers serve` loads in test_real_server.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Reply:
    """What the fake server answers to one request."""

    status: int = 200
    body: Any = None  # a dict is sent as JSON, str/bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def completion(text: str) -> dict[str, Any]:
    """A minimal chat-completions answer carrying `text`."""
    return {
        "id": "fake",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
    }


def echo_text(index: int, body: dict[str, Any]) -> Reply:
    """The default script: answer with the request's text part."""
    parts = body["messages"][0]["content"]
    return Reply(body=completion(next(p["text"] for p in parts if p["type"] == "text")))


class FakeChatServer:
    """Records every request (body, headers, start time) and tracks concurrency."""

    def __init__(self) -> None:
        self.script: Callable[[int, dict[str, Any]], Reply] = echo_text
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.started: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server.lock:
                    index = len(server.bodies)
                    server.bodies.append(json.loads(raw))
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server.started.append(time.monotonic())
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server.script(index, server.bodies[index])
                    time.sleep(reply.delay_s)
                finally:  # counted out before answering: the client may send its next at once
                    with server.lock:
                        server.in_flight -= 1
                body = reply.body
                data = (
                    json.dumps(body).encode()
                    if isinstance(body, dict)
                    else body.encode()
                    if isinstance(body, str)
                    else body or b""
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def reset(self) -> None:
        deadline = time.monotonic() + 3.0
        while self.in_flight and time.monotonic() < deadline:  # a hung reply still sleeping
            time.sleep(0.02)
        self.script = echo_text
        self.bodies.clear()
        self.headers.clear()
        self.started.clear()
        self.max_in_flight = 0


@pytest.fixture(scope="session")
def _fake_chat_server() -> Iterator[FakeChatServer]:
    server = FakeChatServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def fake_chat(_fake_chat_server: FakeChatServer) -> Iterator[FakeChatServer]:
    """The shared fake server, emptied and set to echo for this test."""
    _fake_chat_server.reset()
    yield _fake_chat_server
    _fake_chat_server.reset()


def write_png(path: Path, colour: tuple[int, int, int] = (255, 0, 0)) -> Path:
    from PIL import Image

    Image.new("RGB", (8, 8), colour).save(path)
    return path


def write_sound(path: Path, seconds: float = 0.1, rate: int = 8000) -> Path:
    """A short sine tone; the format follows the suffix (wav, flac, ogg)."""
    import numpy as np
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), rate)
    return path


#: the tiny model's whole vocabulary (word-level): prompts outside it map to <unk>
VOCAB = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "cat", "dog", "red", "blue", "a", "the",
         "picture", "of", "describe", "this", "what", "is", "USER:", "ASSISTANT:"]  # fmt: skip
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% if m['content'] is string %}"
    "{{ m['content'] }} {% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<image> {% elif c['type'] == 'text' %}{{ c['text'] }} {% endif %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)


def save_tiny_llava(folder: Path) -> Path:
    """A random-init LLaVA (CLIP vision tower and Llama decoder, 1 layer each, width 16)
    with a word-level tokenizer and 28-pixel image processor, saved with save_pretrained
    (no hub access: it answers with random words, which tests the plumbing only)."""
    import torch
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = tf.PreTrainedTokenizerFast(
        tokenizer_object=words, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    try:  # transformers 5 splits the PIL image processors out (no torchvision here)
        from transformers.models.clip.image_processing_pil_clip import (
            CLIPImageProcessorPil as ImageProcessor,
        )
    except ImportError:
        ImageProcessor = tf.CLIPImageProcessor  # noqa: N806
    image_processor = ImageProcessor(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
    )
    processor = tf.LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
        vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )  # fmt: skip
    vision = tf.CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, image_size=28, patch_size=14,
                                 projection_dim=16)  # fmt: skip
    text = tf.LlamaConfig(vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32,
                          num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                          max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
                          pad_token_id=3)  # fmt: skip
    config = tf.LlavaConfig(vision_config=vision, text_config=text, image_token_index=4,
                            vision_feature_select_strategy="default", vision_feature_layer=-1)  # fmt: skip
    torch.manual_seed(0)
    model = tf.LlavaForConditionalGeneration(config).eval()
    for name, value in (("bos_token_id", 1), ("eos_token_id", 2), ("pad_token_id", 3)):
        setattr(model.generation_config, name, value)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def chat_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local backend's tiny LLaVA (`tiny_hub.save_chat_vlm`), built once per session."""
    from tests.vlm.tiny_hub import save_chat_vlm

    return save_chat_vlm(tmp_path_factory.mktemp("chat-vlm"))


@pytest.fixture(scope="session")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five small random PNGs of different sizes."""
    from tests.vlm.tiny_hub import save_pictures

    return save_pictures(tmp_path_factory.mktemp("pictures"), 5)
