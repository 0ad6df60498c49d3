"""The JSON answer of a row endpoint (predict, explain, embed, caption, ask): one object a
row, in order, each with its fields or its error; when every row failed, the first row's
status and error instead, so a client sending one bad row gets a plain 4xx."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import ValidationError

from plait.serve.errors import envelope
from plait.serve.runner import Outcome
from plait.serve.uploads import RowChecker


def rows_response(
    request_id: str,
    outcomes: list[Outcome],
    checker: RowChecker,
    empty: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """`{"rows": [...], **extra}`, each row `empty` filled with its outcome's fields."""
    rows = []
    for i, outcome in enumerate(outcomes):
        row: dict[str, Any] = {"index": i, **empty, **(outcome.fields or {})}
        row["error"] = checker.readable(outcome.error.message) if outcome.error else None
        if outcome.error:
            row["error_code"] = outcome.error.code
        rows.append(row)
    failed = [o.error for o in outcomes if o.error is not None]
    if outcomes and len(failed) == len(outcomes):
        first = failed[0]
        body = envelope(first.code, checker.readable(first.message), request_id, rows=rows)
        return JSONResponse(body, status_code=first.status)
    return JSONResponse({"rows": rows, **(extra or {}), "request_id": request_id})


def validation_message(exc: ValidationError, request_name: str) -> str:
    """The first problem of a request body pydantic refused, named by where it is."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']} (see /docs for the {request_name} request)"
