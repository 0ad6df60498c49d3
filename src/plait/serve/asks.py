"""`POST /v1/ask`: a question answerer's endpoint. A picture or sound and a question about
it in, the model's answer (with its probability and the top k) out, as `VqaPredictor.ask`.

Request: JSON `{"rows": [{"<context>": {"base64": ...}, "<question>": "..."}], "top_k": 3}`
or a multipart form: the context file field and the question field, repeated in the same
order for several rows (one question with several files is asked of each), `top_k` a plain
field. Each request's rows are answered together in the model thread.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from plait.serve import runner
from plait.serve.errors import ApiError, RowError
from plait.serve.requests import FORM, FORMS, JSON, form_fields, json_body, media_type
from plait.serve.responses import rows_response, validation_message
from plait.serve.service import Service
from plait.serve.uploads import FilePayload, RowChecker, Value, decode_payload

MAX_QUESTION_CHARS = 1000  # a question, not a document (also under --max-text-chars)
MAX_TOP_K = 50


class AskRequest(BaseModel):
    """`{"rows": [{"<context>": {"base64": ...}, "<question>": "..."}], "top_k": 1}`."""

    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, str | FilePayload | None]]
    top_k: int = Field(1, ge=1, le=MAX_TOP_K, description="answers per row, best first")


class AskForm(BaseModel):
    """The plain fields of a multipart ask request besides the files and questions."""

    model_config = ConfigDict(extra="forbid")
    top_k: int = Field(1, ge=1, le=MAX_TOP_K)


class Ranked(BaseModel):
    answer: str
    probability: float


class AskRow(BaseModel):
    index: int
    answer: str | None
    probability: float | None
    top_k: list[Ranked] | None
    error: str | None = None
    error_code: str | None = None


class AskAnswer(BaseModel):
    rows: list[AskRow]
    request_id: str


async def ask_input(request: Request, service: Service) -> tuple[list[dict[str, Any]], int]:
    """The rows and top k of an ask request (JSON or multipart)."""
    kind = media_type(request)
    context, question = service.names
    if kind == JSON:
        try:
            body = AskRequest.model_validate(await json_body(request))
        except ValidationError as exc:
            raise ApiError(422, "invalid_request", validation_message(exc, "ask")) from None
        rows: list[dict[str, Value | None]] = [
            {n: decode_payload(v, n, i) if isinstance(v, FilePayload) else v
             for n, v in row.items()}
            for i, row in enumerate(body.rows)
        ]  # fmt: skip
        top_k = body.top_k
    elif kind in FORMS:
        fields = await form_fields(request, service.settings)
        files = [value for name, value in fields if name == context]
        questions = [value for name, value in fields if name == question]
        if len(questions) == 1 and len(files) > 1:
            questions = questions * len(files)
        if files and questions and len(files) != len(questions):
            raise ApiError(422, "invalid_request", f"{len(files)} '{context}' files but "
                           f"{len(questions)} '{question}' fields: send one question per file, "
                           "in the same order (or one question for all)")  # fmt: skip
        count = max(len(files), len(questions))
        rows = [
            {context: files[i] if files else None, question: questions[i] if questions else None}
            for i in range(count)
        ]
        given = {name: value for name, value in fields if name not in (context, question)}
        if any(not isinstance(value, str) for value in given.values()):
            raise ApiError(422, "unknown_field", f"upload files as '{context}' (got "
                           f"{sorted(given)})")  # fmt: skip
        try:
            top_k = AskForm.model_validate(given).top_k
        except ValidationError as exc:
            raise ApiError(422, "invalid_request", validation_message(exc, "ask")) from None
    else:
        raise ApiError(
            415, "unsupported_media_type", f"send {FORM} or {JSON}; got '{kind or 'nothing'}'"
        )
    if len(rows) > service.settings.max_rows:
        raise ApiError(
            413, "too_many_rows", f"{len(rows)} rows; at most {service.settings.max_rows}"
        )
    return rows, top_k


def _missing(service: Service, values: dict[str, str]) -> RowError | None:
    """Why a checked row cannot be asked (no file, no question, a question too long)."""
    context, question = service.names
    if context not in values:
        return RowError(422, "missing_input", f"no '{context}' in this row: upload the file "
                        "the question is about")  # fmt: skip
    if not values.get(question, "").strip():
        return RowError(422, "missing_input", f"no '{question}' in this row: ask something")
    if len(values[question]) > MAX_QUESTION_CHARS:
        return RowError(413, "text_too_long", f"'{question}' has {len(values[question])} "
                        f"characters; a question has at most {MAX_QUESTION_CHARS}")  # fmt: skip
    return None


def ask_routes(api: APIRouter, service: Service) -> None:
    """`POST /ask`, and `POST /predict` answering where to go instead."""
    predictor = service.predictor
    context, question = service.names
    service.ask_limits = {"max_question_chars": MAX_QUESTION_CHARS, "max_top_k": MAX_TOP_K}

    @api.post(
        "/ask",
        response_model=AskAnswer,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {"schema": AskRequest.model_json_schema()},
                    FORM: {
                        "schema": {
                            "type": "object",
                            "description": (
                                f"'{context}': the file; '{question}': the question (repeat "
                                "both, in order, for several rows); 'top_k': answers per row"
                            ),
                        }
                    },
                },  # fmt: skip
            }
        },
    )
    async def ask(request: Request) -> JSONResponse:
        """The answer to a question about each uploaded picture or sound, with the top k."""
        rows, top_k = await ask_input(request, service)
        checker = RowChecker(predictor.config, service.settings, service.names)
        try:
            checked = await run_in_threadpool(checker.check, rows)
            for item in checked:  # no file or no question: a row error, not a guess
                if item.error is None:
                    item.error = _missing(service, item.values)
            outcomes = await service.call(runner.ask_rows, predictor, checked, top_k)
        finally:
            checker.cleanup()
        empty = {"answer": None, "probability": None, "top_k": None}
        return rows_response(request.state.request_id, outcomes, checker, empty)

    @api.post("/predict", include_in_schema=False)
    async def predict() -> None:
        raise ApiError(
            404,
            "vqa_model",
            f"this model answers questions: POST the '{context}' file and a '{question}' to "
            "/v1/ask instead",
        )
