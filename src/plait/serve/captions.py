"""`POST /v1/caption`: a captioner's endpoint. One or several pictures or sounds in, a
caption each out, with the decoding options of `CaptioningPredictor.caption` bounded here.

Request: JSON `{"rows": [{"<source>": {"base64": ...}}, ...], "options": {...}}` or a
multipart form with one file per row (the source modality's field, repeated for several)
and the options as plain fields. Each request's rows are captioned together in the model
thread (not micro-batched with other requests: decoding options differ per request).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from plait.errors import PlaitError
from plait.serve import runner
from plait.serve.errors import ApiError, RowError
from plait.serve.requests import FORM, FORMS, JSON, form_fields, json_body, media_type
from plait.serve.responses import rows_response, validation_message
from plait.serve.service import Service
from plait.serve.uploads import FilePayload, RowChecker, Value, decode_payload


class CaptionOptions(BaseModel):
    """Decoding options (Hugging Face `generate()` names); unset ones keep the model's
    defaults (its config: greedy unless it says otherwise)."""

    model_config = ConfigDict(extra="forbid")
    max_length: int | None = Field(None, ge=1, le=256, description="tokens at most")
    num_beams: int | None = Field(None, ge=1, le=8, description="1: greedy or sampling")
    length_penalty: float | None = Field(None, ge=-10, le=10)
    do_sample: bool | None = Field(None, description="sample instead of the best token")
    top_k: int | None = Field(None, ge=0, le=1000, description="0: no limit")
    top_p: float | None = Field(None, gt=0, le=1)
    temperature: float | None = Field(None, gt=0, le=10)
    no_repeat_ngram_size: int | None = Field(None, ge=0, le=10)
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="repeatable sampling")


class CaptionRequest(BaseModel):
    """`{"rows": [{"<source>": {"base64": ...}}], "options": {...}}`."""

    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, FilePayload | None]]
    options: CaptionOptions = CaptionOptions()


class CaptionRow(BaseModel):
    index: int
    caption: str | None
    error: str | None = None
    error_code: str | None = None


class CaptionAnswer(BaseModel):
    rows: list[CaptionRow]
    decoding: dict[str, Any] = Field(description="the options used, defaults filled in")
    request_id: str


def longest_caption(predictor: Any) -> int:
    """The most tokens the model's decoder can write (its positions, less the start token
    for the scratch decoder, less the prefix for a hub LM)."""
    settings = predictor.config.captioning
    if settings.decoder == "hub":
        from transformers import AutoConfig

        try:
            lm = AutoConfig.from_pretrained(settings.model)
        except (OSError, ValueError):  # the LM's config is not readable here: trust the config
            return int(settings.max_length)
        positions = getattr(lm, "n_positions", None) or getattr(lm, "max_position_embeddings", 0)
        return max(1, int(positions) - settings.prefix_length) if positions else 256
    caption = predictor.config.modalities[predictor.caption_modality]
    return max(settings.max_length, int(getattr(caption, "max_length", 0))) + 1


async def caption_input(
    request: Request, service: Service
) -> tuple[list[dict[str, Value | None]], CaptionOptions]:
    """The rows and options of a caption request (JSON or multipart)."""
    kind = media_type(request)
    source = service.names[0]
    if kind == JSON:
        try:
            body = CaptionRequest.model_validate(await json_body(request))
        except ValidationError as exc:
            raise ApiError(422, "invalid_request", validation_message(exc, "caption")) from None
        rows: list[dict[str, Value | None]] = [
            {n: decode_payload(v, n, i) if v is not None else None for n, v in row.items()}
            for i, row in enumerate(body.rows)
        ]
        options = body.options
    elif kind in FORMS:
        fields = await form_fields(request, service.settings)
        rows = [{name: value} for name, value in fields if name == source]
        given = {name: value for name, value in fields if name != source}
        files = [name for name, value in given.items() if not isinstance(value, str)]
        if files:
            raise ApiError(422, "unknown_field", f"upload files as '{source}' (got {files})")
        try:
            options = CaptionOptions.model_validate(given)
        except ValidationError as exc:
            raise ApiError(422, "invalid_request", validation_message(exc, "caption")) from None
    else:
        raise ApiError(
            415, "unsupported_media_type", f"send {FORM} or {JSON}; got '{kind or 'nothing'}'"
        )
    if len(rows) > service.settings.max_rows:
        raise ApiError(
            413, "too_many_rows", f"{len(rows)} rows; at most {service.settings.max_rows}"
        )
    return rows, options


def caption_routes(api: APIRouter, service: Service) -> None:
    """`POST /caption`, and `POST /predict` answering where to go instead."""
    predictor = service.predictor
    longest = longest_caption(predictor)
    service.caption_limits = {"max_length": longest}

    @api.post(
        "/caption",
        response_model=CaptionAnswer,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {"schema": CaptionRequest.model_json_schema()},
                    FORM: {
                        "schema": {
                            "type": "object",
                            "description": (
                                f"'{service.names[0]}': one file per row (repeat the field for "
                                "several); the options of CaptionOptions as plain fields"
                            ),
                        }
                    },
                },  # fmt: skip
            }
        },
    )
    async def caption(request: Request) -> JSONResponse:
        """A caption for each uploaded picture or sound, with the decoding options."""
        rows, given = await caption_input(request, service)
        chosen = given.model_dump(exclude_none=True)
        if chosen.get("max_length", 0) > longest:
            raise ApiError(422, "invalid_request", f"options.max_length: at most {longest} "
                           "for this model's decoder")  # fmt: skip
        try:
            options = predictor.options(**chosen)
        except PlaitError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        checker = RowChecker(predictor.config, service.settings, service.names)
        try:
            checked = await run_in_threadpool(checker.check, rows)
            source = service.names[0]
            for item in checked:  # nothing to caption: a row error, not a caption of nothing
                if item.error is None and source not in item.values:
                    message = f"no '{source}' in this row: upload the file to caption"
                    item.error = RowError(422, "missing_input", message)
            outcomes = await service.call(runner.caption_rows, predictor, checked, options)
        finally:
            checker.cleanup()
        return rows_response(
            request.state.request_id,
            outcomes,
            checker,
            {"caption": None},
            {"decoding": options.as_dict()},
        )

    @api.post("/predict", include_in_schema=False)
    async def predict() -> None:
        raise ApiError(
            404,
            "captioning_model",
            "this model is a captioner: POST the picture or sound to /v1/caption instead",
        )
