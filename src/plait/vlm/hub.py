"""A local vision-language model from the Hugging Face hub (or a folder laid out like one),
run through transformers' `AutoProcessor` + `AutoModelForImageTextToText`.

Free answers are generated in batches with the model's own chat template, greedily unless
a request asks for a temperature. Constrained answers (`VlmRequest.choices`) are not
generated at all: each choice is scored by the log-likelihood the model gives its tokens
after the prompt (the sum over the choice's tokens, the usual multiple-choice scoring), and
the likeliest choice is the answer, so the answer is always one of the choices. The sum
favours shorter names when one class name starts another (`cat` / `cat food`); give
classes distinct first words where that matters.

This backend takes pictures only; sounds are refused by name (send them to an
audio-capable model through the OpenAI-compatible backend).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from plait.errors import ConfigError, DataError, PlaitError
from plait.utils.progress import progress_bar
from plait.vlm.base import Media, MediaKind, VlmRequest

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HubVlmBackend:
    """A hub image-text-to-text model answering `VlmRequest`s on this machine.

    Args:
        model: a hub name (`llava-hf/llava-interleave-qwen-0.5b-hf`) or a local folder.
        device: `cpu`, `cuda`, `cuda:1`, or `auto` (the GPU when there is one).
        dtype: `auto` (the checkpoint's own), `float32`, `bfloat16` or `float16`.
        batch_size: requests generated together (and choices scored together).
    """

    modalities: frozenset[MediaKind] = frozenset({"image"})

    def __init__(
        self, model: str, *, device: str = "cpu", dtype: str = "auto", batch_size: int = 8
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if dtype != "auto" and dtype not in DTYPES:
            raise ConfigError(f"dtype '{dtype}': use auto, {', '.join(DTYPES)}")
        self.name = model
        self.batch_size = batch_size
        self.device = _device(device)
        self.dtype = dtype
        self.identity = f"hub:{model}@{_checked(model)}:dtype={dtype}"
        self._parts: tuple[Any, Any] | None = None  # loaded when first asked

    @property
    def processor(self) -> Any:
        return self._loaded()[0]

    @property
    def model(self) -> Any:
        return self._loaded()[1]

    def _loaded(self) -> tuple[Any, Any]:
        """Processor and model, loaded on first use: a rerun whose answers are all cached
        (`CachedBackend`) never loads the weights."""
        if self._parts is None:
            self._parts = _load(self.name, self.dtype, self.device)
        return self._parts

    # ------------------------------------------------------------------ answers
    def generate(self, requests: Sequence[VlmRequest], *, progress: bool = True) -> list[str]:
        """One answer per request, in order (free text, or one of its `choices`)."""
        for request in requests:
            self._check_media(request)
        answers: list[str | None] = [None] * len(requests)
        free = [i for i, r in enumerate(requests) if r.choices is None]
        with progress_bar(progress, f"asking {self.name}", len(requests)) as advance:
            for group in _batches(free, requests, self.batch_size):
                texts = self._generate([requests[i] for i in group])
                for i, text in zip(group, texts, strict=True):
                    answers[i] = text
                advance(len(group))
            for i, request in enumerate(requests):
                if request.choices is not None:
                    answers[i] = self._choose(request)
                    advance()
        return [a if a is not None else "" for a in answers]

    def _check_media(self, request: VlmRequest) -> None:
        for media in request.media:
            if media.kind not in self.modalities:
                where = f"{request.row}: " if request.row else ""
                raise DataError(
                    f"{where}{media.name}: {self.name} takes pictures only, not {media.kind}; "
                    "send sounds to an audio-capable model (--provider openai)"
                )
        if request.choices is not None and not request.choices:
            raise ConfigError("a request with choices needs at least one choice")

    def _inputs(self, requests: Sequence[VlmRequest], padding_side: str) -> dict[str, Any]:
        """The processor's tensors for prompts built with the model's chat template."""
        texts = [self._chat_text(r) for r in requests]
        # one list of pictures per prompt: the nested form every processor accepts
        images = [[_image(m, r) for m in r.media] for r in requests]
        self.processor.tokenizer.padding_side = padding_side
        try:
            encoded = self.processor(
                images=images if any(images) else None, text=texts, return_tensors="pt",
                padding=True,
            )  # fmt: skip
        except (ValueError, TypeError) as error:
            raise PlaitError(f"{self.name}: its processor refused the request ({error})") from error
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in encoded.items()}

    def _chat_text(self, request: VlmRequest) -> str:
        content: list[dict[str, str]] = [{"type": "image"} for _ in request.media]
        content.append({"type": "text", "text": request.prompt})
        messages = [{"role": "user", "content": content}]
        if getattr(self.processor, "chat_template", None) is None:
            raise ConfigError(
                f"{self.name} has no chat template, so Plait cannot build its prompts; "
                "use a chat (instruction-tuned) vision-language model"
            )
        text: str = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return text

    @torch.inference_mode()
    def _generate(self, requests: Sequence[VlmRequest]) -> list[str]:
        inputs = self._inputs(requests, padding_side="left")
        first = requests[0]
        sample = first.temperature > 0
        options: dict[str, Any] = {"max_new_tokens": first.max_new_tokens, "do_sample": sample}
        if sample:
            options["temperature"] = first.temperature
        tokenizer = self.processor.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else None
        out = self.model.generate(**inputs, **options, pad_token_id=pad)  # [B, L + new]
        new = out[:, inputs["input_ids"].shape[1] :]  # [B, new]
        return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]

    @torch.inference_mode()
    def _choose(self, request: VlmRequest) -> str:
        """The choice whose tokens the model finds likeliest after the prompt."""
        choices = request.choices or ()
        prompt = self._inputs([request], padding_side="right")
        tokenizer = self.processor.tokenizer
        scores: list[float] = []
        for start in range(0, len(choices), self.batch_size):
            chunk = choices[start : start + self.batch_size]
            ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in chunk]
            scores.extend(self._score(prompt, ids))
        return choices[max(range(len(choices)), key=scores.__getitem__)]

    def _score(self, prompt: dict[str, Any], choice_ids: list[list[int]]) -> list[float]:
        """Sum of log p(choice token | prompt, earlier choice tokens), per choice."""
        prompt_ids = prompt["input_ids"][0]  # [L]
        length, k = prompt_ids.shape[0], len(choice_ids)
        longest = max(len(ids) for ids in choice_ids)
        pad = self.processor.tokenizer.pad_token_id or 0
        input_ids = torch.full((k, length + longest), pad, dtype=prompt_ids.dtype)  # [k, T]
        mask = torch.zeros((k, length + longest), dtype=torch.long)  # [k, T]
        for j, ids in enumerate(choice_ids):
            input_ids[j, :length] = prompt_ids
            input_ids[j, length : length + len(ids)] = torch.tensor(ids)
            mask[j, : length + len(ids)] = 1
        inputs: dict[str, Any] = {}
        for key, value in prompt.items():
            if key in ("input_ids", "attention_mask"):
                continue
            if torch.is_tensor(value) and value.dim() == 2 and value.shape == (1, length):
                padded = torch.zeros((k, length + longest), dtype=value.dtype)  # [k, T]
                padded[:, :length] = value[0]
                inputs[key] = padded.to(self.device)
            elif torch.is_tensor(value):  # per-image tensors: one copy per choice
                inputs[key] = torch.cat([value] * k)
            else:
                inputs[key] = value
        inputs["input_ids"], inputs["attention_mask"] = (
            input_ids.to(self.device),
            mask.to(self.device),
        )
        logits = self.model(**inputs).logits.float()  # [k, T, V]
        logprobs = torch.log_softmax(logits[:, length - 1 : -1], dim=-1)  # [k, longest, V]
        scores = []
        for j, ids in enumerate(choice_ids):
            picked = logprobs[j, torch.arange(len(ids)), torch.tensor(ids)]  # [len(ids)]
            scores.append(float(picked.sum()))
        return scores


def _batches(positions: list[int], requests: Sequence[VlmRequest], size: int) -> list[list[int]]:
    """Consecutive runs of at most `size` requests sharing their generation settings."""
    groups: list[list[int]] = []
    for i in positions:
        last = groups[-1] if groups else None
        if last and len(last) < size and _key(requests[last[0]]) == _key(requests[i]):
            last.append(i)
        else:
            groups.append([i])
    return groups


def _key(request: VlmRequest) -> tuple[int, float]:
    return (request.max_new_tokens, request.temperature)


def _image(media: Media, request: VlmRequest) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(media.data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        where = f"{request.row}: " if request.row else ""
        raise DataError(f"{where}{media.name}: not a readable picture ({error})") from error
    return image.convert("RGB")


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ConfigError(f"device '{device}': {error}") from error


def _checked(model: str) -> str:
    """A fingerprint of the exact weights, after checking that `model` exists and is an
    image-text-to-text model (reads only its config)."""
    import transformers as tf
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    try:
        config = tf.AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise ConfigError(_not_found(model, error)) from error
    if config.model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise ConfigError(
            f"model '{model}' is a '{config.model_type}' model, not an image-text-to-text "
            "(vision-language) model; pick one transformers loads with "
            "AutoModelForImageTextToText (LLaVA, Qwen2-VL, SmolVLM, Idefics3, Gemma 3, ...)"
        )
    commit = getattr(config, "_commit_hash", None)
    return str(commit) if commit else _folder_fingerprint(Path(model))


def _load(model: str, dtype: str, device: torch.device) -> tuple[Any, Any]:
    """Processor and model (eval, on `device`)."""
    import transformers as tf

    try:
        processor = tf.AutoProcessor.from_pretrained(model)
        loaded: Any = tf.AutoModelForImageTextToText.from_pretrained(
            model, dtype=DTYPES.get(dtype, "auto")
        )
    except (OSError, ValueError) as error:
        raise ConfigError(f"model '{model}': cannot be loaded ({error})") from error
    if getattr(processor, "tokenizer", None) is None:
        raise ConfigError(f"model '{model}': its processor has no tokenizer")
    return processor, loaded.to(device).eval()


def _not_found(model: str, error: Exception) -> str:
    if Path(model).expanduser().is_dir():
        return f"model folder {model}: no vision-language model there ({error})"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline:
        return (
            f"model '{model}' is neither a local folder nor in the Hugging Face cache, and "
            "HF_HUB_OFFLINE is set so it cannot be downloaded; check the name, download it "
            "once with network (huggingface-cli download NAME) or give a local folder"
        )
    return (
        f"model '{model}' is neither a local folder nor a model on the Hugging Face hub "
        f"({error}); check the name"
    )


def _folder_fingerprint(folder: Path) -> str:
    """A hash of a local folder's config and the names, sizes and times of its weights:
    cheap for multi-gigabyte weights, and it changes when they are replaced."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            digest.update(path.name.encode() + path.read_bytes())
        elif path.suffix in (".safetensors", ".bin", ".pt"):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]
