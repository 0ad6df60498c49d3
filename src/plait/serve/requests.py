"""Reading a request's body into rows: multipart form (one row) or JSON (many rows).

Anything that is not one of the two documented shapes is a malformed request (415 for
another media type, 422 for a body that does not parse), never a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from plait.serve.errors import ApiError
from plait.serve.settings import ServeSettings
from plait.serve.uploads import FilePayload, Upload, Value, decode_payload

JSON = "application/json"
FORM = "multipart/form-data"
FORMS = (FORM, "application/x-www-form-urlencoded")  # the second: text-only forms


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


async def form_fields(request: Request, settings: ServeSettings) -> list[tuple[str, Value]]:
    """Every (name, value) of a multipart body, uploads read into memory (the body is
    already bounded by the size limit)."""
    try:
        form = await request.form(max_files=64, max_fields=256)
    except Exception as exc:  # Starlette's MultiPartException and parser errors
        raise ApiError(400, "invalid_form", f"the multipart body does not parse: {exc}") from None
    fields: list[tuple[str, Value]] = []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                fields.append(
                    (name, Upload(data, (value.content_type or "").lower(), value.filename or ""))
                )
            else:
                fields.append((name, value))
    finally:
        await form.close()
    return fields


def one_row(fields: list[tuple[str, Value]], skip: tuple[str, ...] = ()) -> dict[str, Value | None]:
    """A form's fields as one row (a field given twice is an error)."""
    row: dict[str, Value | None] = {}
    for name, value in fields:
        if name in skip:
            continue
        if name in row:
            raise ApiError(422, "duplicate_field", f"the field '{name}' is given twice")
        row[name] = value
    return row


async def read_rows(request: Request, settings: ServeSettings) -> list[dict[str, Value | None]]:
    """The rows of a predict / explain / embed request."""
    from plait.serve.uploads import rows_from_json

    kind = media_type(request)
    if kind == JSON:
        return rows_from_json(await json_body(request), settings)
    if kind in FORMS:
        return [one_row(await form_fields(request, settings))]
    raise ApiError(
        415,
        "unsupported_media_type",
        f"send {FORM} (one row) or {JSON} ({{\"rows\": [...]}}); got '{kind or 'nothing'}'",
    )


def value_of(raw: Any, where: str) -> Value:
    """A JSON value: a text, or a `{"base64": ...}` file."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        try:
            return decode_payload(FilePayload.model_validate(raw), where, 0)
        except ApiError:
            raise
        except Exception:
            pass
    raise ApiError(
        422,
        "invalid_request",
        f'{where}: expected a text or {{"base64": "...", "filename": "..."}}',
    )
