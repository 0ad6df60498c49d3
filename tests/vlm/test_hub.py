"""The local hub backend on a tiny random-init LLaVA: answers per request, batching that
changes nothing, constrained answers that are the likeliest choice, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from plait.errors import ConfigError, DataError
from plait.vlm.base import Media, VlmBackend, VlmRequest
from plait.vlm.hub import HubVlmBackend

CLASSES = ("cat", "dog", "bird")


@pytest.fixture(scope="module")
def backend(chat_vlm: Path) -> HubVlmBackend:
    return HubVlmBackend(str(chat_vlm), batch_size=3)


def _ask(pictures: list[Path], **options: object) -> list[VlmRequest]:
    return [
        VlmRequest(media=(Media.from_path(p),), prompt="describe this picture", **options)  # type: ignore[arg-type]
        for p in pictures
    ]


def test_one_answer_per_request_repeatable_and_batching_changes_nothing(
    backend: HubVlmBackend, pictures: list[Path]
) -> None:
    assert isinstance(backend, VlmBackend)
    requests = _ask(pictures, max_new_tokens=5)
    answers = backend.generate(requests, progress=False)
    assert len(answers) == len(pictures) and all(isinstance(a, str) for a in answers)
    assert len(set(answers)) > 1  # the picture reaches the model
    assert backend.generate(requests, progress=False) == answers  # greedy: repeatable
    backend.batch_size = 1
    try:
        assert backend.generate(requests, progress=False) == answers
    finally:
        backend.batch_size = 3
    assert all("describe" not in a for a in answers)  # new tokens only, not the prompt


def test_choices_pick_the_likeliest_class(backend: HubVlmBackend, pictures: list[Path]) -> None:
    requests = _ask(pictures[:3], choices=CLASSES)
    answers = backend.generate(requests, progress=False)
    assert all(a in CLASSES for a in answers)
    # the same scores computed one unpadded choice at a time, straight from the model
    tokenizer = backend.processor.tokenizer
    for request, answer in zip(requests, answers, strict=True):
        prompt = backend._inputs([request], padding_side="right")
        scores = []
        for choice in CLASSES:
            ids = torch.tensor([tokenizer(choice, add_special_tokens=False)["input_ids"]])
            full = dict(prompt, input_ids=torch.cat([prompt["input_ids"], ids], 1))
            full["attention_mask"] = torch.ones_like(full["input_ids"])
            with torch.no_grad():
                logits = backend.model(**full).logits[0].float()  # [T, V]
            length = prompt["input_ids"].shape[1]
            logp = torch.log_softmax(logits[length - 1 : -1], -1)  # [n, V]
            scores.append(float(logp[torch.arange(ids.shape[1]), ids[0]].sum()))
        assert answer == CLASSES[max(range(3), key=scores.__getitem__)]


def test_mixed_free_and_constrained_requests_keep_their_order(
    backend: HubVlmBackend, pictures: list[Path]
) -> None:
    free = _ask(pictures[:2], max_new_tokens=3)
    fixed = _ask(pictures[:2], choices=("red", "blue"))
    answers = backend.generate([free[0], fixed[0], free[1], fixed[1]], progress=False)
    assert answers[0::2] == backend.generate(free, progress=False)
    assert answers[1::2] == backend.generate(fixed, progress=False)


def test_sound_to_a_picture_model_is_refused(backend: HubVlmBackend) -> None:
    sound = Media(data=b"RIFF....", mime="audio/wav", name="beep.wav")
    with pytest.raises(DataError, match=r"beep\.wav.*pictures only"):
        backend.generate([VlmRequest(media=(sound,), prompt="describe")], progress=False)


def test_unreadable_picture_is_named(backend: HubVlmBackend) -> None:
    broken = Media(data=b"not a png", mime="image/png", name="broken.png")
    with pytest.raises(DataError, match=r"broken\.png: not a readable picture"):
        backend.generate([VlmRequest(media=(broken,), prompt="describe")], progress=False)


def test_unknown_model_offline_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set"):
        HubVlmBackend("nobody/no-such-vlm-xyz")


def test_a_model_that_is_not_image_text_to_text_is_refused(tmp_path: Path) -> None:
    import transformers as tf

    tf.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        tmp_path
    )
    with pytest.raises(ConfigError, match="'bert' model, not an image-text-to-text"):
        HubVlmBackend(str(tmp_path))


def test_requests_with_no_one_or_two_pictures_batch_together(
    backend: HubVlmBackend, pictures: list[Path]
) -> None:
    media = [Media.from_path(p) for p in pictures[:2]]
    requests = [
        VlmRequest(media=m, prompt="describe", max_new_tokens=4)
        for m in [(), (media[0],), (media[0], media[1])]
    ]
    together = backend.generate(requests, progress=False)
    assert [backend.generate([r], progress=False)[0] for r in requests] == together


def test_weights_load_on_first_use_so_a_cached_rerun_never_loads_them(
    chat_vlm: Path, pictures: list[Path], tmp_path: Path
) -> None:
    from plait.vlm.cache import CachedBackend

    requests = _ask(pictures[:2], max_new_tokens=3)
    first = CachedBackend(HubVlmBackend(str(chat_vlm)), tmp_path).generate(requests, progress=False)
    fresh = HubVlmBackend(str(chat_vlm))
    assert CachedBackend(fresh, tmp_path).generate(requests, progress=False) == first
    assert fresh._parts is None  # every answer came from the cache
