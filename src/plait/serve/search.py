"""`/v1/search` and `/v1/items/{id}/media`: the k nearest indexed items to a query, and
an item's file, read from the path the INDEX stored (never one a request names)."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from plait.errors import PlaitError
from plait.serve.errors import ApiError
from plait.serve.inputs import json_or_form, tower_of
from plait.serve.requests import (
    one_row,
    value_of,
)
from plait.serve.service import PREFIX, Service
from plait.serve.uploads import RowChecker, Upload, Value

MEDIA_TYPES = ("image/", "audio/")


def search_routes(api: APIRouter, service: Service) -> None:
    from plait.retrieval.search import shown_columns

    index, predictor = service.index, service.predictor
    columns = shown_columns(index, None)
    media_column = index.info.get("column")
    kind = index.info.get("kind") or index.info.get("modality")

    @api.post("/search")
    async def search(request: Request) -> JSONResponse:
        """The k indexed items nearest to one query (any tower of the model)."""
        body, fields = await json_or_form(request)
        if fields is not None:
            k_raw: Any = one_row(fields).pop("k", "10")
            row: dict[str, Value | None] = one_row(fields, skip=("k",))
        else:
            if not isinstance(body, dict) or not isinstance(body.get("query"), dict):
                raise ApiError(
                    422, "invalid_request", 'send {"query": {"<modality>": value}, "k": 10}'
                )
            k_raw = body.get("k", 10)
            row = {n: value_of(v, f"query.{n}") for n, v in body["query"].items()}
        try:
            k = int(k_raw) if not isinstance(k_raw, Upload) else -1
        except (TypeError, ValueError):
            k = -1
        if not 1 <= k <= 1000:
            raise ApiError(422, "invalid_request", "`k` must be a whole number from 1 to 1000")
        if len(row) != 1:
            raise ApiError(422, "invalid_request", "the query holds exactly one modality")
        ((given, value),) = row.items()
        if value is None:
            raise ApiError(422, "invalid_request", "the query is empty")
        name = tower_of(service, value, given)
        checker = RowChecker(predictor.config, service.settings, service.names)
        try:
            cell = await run_in_threadpool(checker.rejecting, 0, name, value)
            vector = await service.call(predictor.embed_values, name, [cell])
        except PlaitError as exc:
            raise ApiError(422, "unreadable_input", checker.readable(str(exc))) from None
        finally:
            checker.cleanup()
        hits = index.search(vector, k)[0]
        meta = hits.metadata
        found = []
        for rank, (item, score) in enumerate(zip(hits.ids, hits.scores, strict=True), start=1):
            values = {c: _jsonable(meta[c].iloc[rank - 1]) for c in columns if c in meta.columns}
            url = None
            if media_column and _media_path(index, service.items.get(item), media_column):
                url = f"{PREFIX}/items/{item}/media"
            found.append(
                {
                    "rank": rank,
                    "id": item,
                    "score": float(score),
                    "columns": values,
                    "media_url": url,
                }
            )
        return JSONResponse(
            {
                "hits": found,
                "query_modality": name,
                "indexed": kind,
                "request_id": request.state.request_id,
            }
        )

    @api.get("/items/{item}/media")
    async def media(item: str) -> Response:
        """An indexed item's file, read from the path the INDEX stored (never a path a
        request names)."""
        path = _media_path(index, service.items.get(item), media_column)
        if path is None:
            raise ApiError(404, "not_found", f"no media for item '{item}'")
        return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0])


def _media_path(index: Any, position: int | None, column: str | None) -> Path | None:
    if position is None or not column or column not in index.metadata.columns:
        return None
    cell = index.metadata[column].iloc[position]
    if not isinstance(cell, str) or "#" in cell:
        return None
    path = Path(cell)
    guessed = mimetypes.guess_type(path.name)[0] or ""
    if not guessed.startswith(MEDIA_TYPES) or not path.is_file():
        return None
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
