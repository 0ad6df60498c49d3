"""Reading the one-value endpoints (similarity, zero-shot, search): which aligned tower
a value goes to, and the JSON or form shapes of SERVE_API.md."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from plait.errors import PlaitError
from plait.serve.errors import ApiError
from plait.serve.requests import (
    FORM,
    FORMS,
    JSON,
    form_fields,
    json_body,
    media_type,
    value_of,
)
from plait.serve.service import Service
from plait.serve.uploads import Upload, Value


async def json_or_form(request: Request) -> tuple[Any, list[tuple[str, Value]] | None]:
    kind = media_type(request)
    if kind == JSON:
        return await json_body(request), None
    if kind in FORMS:
        return None, await form_fields(request, request.app.state.service.settings)
    raise ApiError(
        415, "unsupported_media_type", f"send {JSON} or {FORM}; got '{kind or 'nothing'}'"
    )


def tower_of(service: Service, value: Value, given: str | None = None) -> str:
    """The aligned modality a value goes to: the one named, else the text tower for a
    text and the other tower for a file (sniffed image or audio when neither is text)."""
    predictor = service.predictor
    if given is not None:
        try:
            return str(predictor.modality(given))
        except PlaitError as exc:
            raise ApiError(422, "unknown_field", str(exc)) from None
    kinds = {predictor.config.modalities[n].kind: n for n in predictor.pair}
    if isinstance(value, str):
        if "text" not in kinds:
            raise ApiError(422, "invalid_request", "this model has no text tower: send a file")
        return kinds["text"]
    others = [n for k, n in kinds.items() if k != "text"]
    if len(others) == 1:
        return others[0]
    return kinds["image"] if _looks_like_image(value) else kinds["audio"]


def _looks_like_image(upload: Upload) -> bool:
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(upload.data)):
            return True
    except Exception:
        return False


def _named(raw: Any) -> tuple[str | None, Any]:
    """`{"<modality>": value}` -> (name, value); a bare value -> (None, value)."""
    if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) not in ("base64",):
        ((name, value),) = raw.items()
        return name, value
    return None, raw


async def similarity_input(
    request: Request, service: Service
) -> tuple[tuple[str, Value], tuple[str, list[Value]]]:
    body, fields = await json_or_form(request)
    limit = service.settings.max_rows
    if fields is not None:
        files = [(n, v) for n, v in fields if isinstance(v, Upload)]
        texts = [v for _, v in fields if isinstance(v, str)]
        if len(files) != 1 or not texts:
            raise ApiError(
                422, "invalid_request", "send one file field (`file`) and one or more `text` fields"
            )
        name, upload = files[0]
        qname = tower_of(service, upload, None if name == "file" else name)
        query: tuple[str, Value] = (qname, upload)
        cands: list[Value] = list(texts)
        cname = tower_of(service, cands[0])
    else:
        if not isinstance(body, dict) or set(body) - {"query", "candidates"} or "query" not in body:
            raise ApiError(
                422, "invalid_request", 'send {"query": <value>, "candidates": [<values>]}'
            )
        given, raw = _named(body["query"])
        qvalue = value_of(raw, "query")
        query = (tower_of(service, qvalue, given), qvalue)
        raw_c = body.get("candidates")
        cgiven = None
        if isinstance(raw_c, dict) and len(raw_c) == 1:
            ((cgiven, raw_c),) = raw_c.items()
        if not isinstance(raw_c, list) or not raw_c:
            raise ApiError(422, "invalid_request", "`candidates` must be a non-empty list")
        cands = [value_of(v, f"candidates[{i}]") for i, v in enumerate(raw_c)]
        cname = tower_of(service, cands[0], cgiven)
    if len(cands) > limit:
        raise ApiError(413, "too_many_rows", f"{len(cands)} candidates; at most {limit}")
    if cname == query[0]:
        raise ApiError(422, "invalid_request", "query and candidates must be different modalities")
    return query, (cname, cands)


async def zeroshot_input(request: Request, service: Service) -> tuple[dict[str, Any], list[str]]:
    body, fields = await json_or_form(request)
    if fields is not None:
        classes = [v for n, v in fields if n == "classes" and isinstance(v, str)]
        if len(classes) == 1 and "," in classes[0]:
            classes = [c.strip() for c in classes[0].split(",")]
        rest = [(("" if n == "file" else n), v) for n, v in fields if n != "classes"]
        if len(rest) != 1:
            raise ApiError(422, "invalid_request", "send one value field and `classes`")
        ((name, value),) = rest
        row = {tower_of(service, value, name or None): value}
    else:
        if not isinstance(body, dict) or "query" not in body or "classes" not in body:
            raise ApiError(422, "invalid_request", 'send {"query": <value>, "classes": [str]}')
        given, raw = _named(body["query"])
        value = value_of(raw, "query")
        row = {tower_of(service, value, given): value}
        classes = body["classes"]
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) and c.strip() for c in classes)
    ):
        raise ApiError(422, "invalid_request", "`classes` must list at least two class names")
    return row, [c.strip() for c in classes]
