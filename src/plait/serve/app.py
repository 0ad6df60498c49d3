"""The HTTP service of one trained model: `create_app(predictor, settings, index)`.

Endpoints and their JSON shapes are the contract in the README's "Serve a model"
section. The event loop only parses, checks and answers; every model call runs in one
worker thread (torch already uses the cores), rows of concurrent requests batched by
`MicroBatcher`. The page shipped in `static/` is served at `/`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import mimetypes
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from plait.errors import PlaitError
from plait.serve import runner
from plait.serve.batcher import MicroBatcher
from plait.serve.errors import ApiError, envelope
from plait.serve.metrics import Metrics
from plait.serve.middleware import ServiceMiddleware, arrived
from plait.serve.requests import (
    FORM,
    FORMS,
    JSON,
    form_fields,
    json_body,
    media_type,
    one_row,
    read_rows,
    value_of,
)
from plait.serve.runner import Outcome
from plait.serve.settings import ServeSettings
from plait.serve.uploads import CheckedRow, RowChecker, Upload, Value

log = logging.getLogger("plait.serve")
STATIC = Path(__file__).parent / "static"
PREFIX = "/v1"
MEDIA_TYPES = ("image/", "audio/")
INLINE_CHECK_BYTES = 1 << 20  # smaller uploads are checked and written on the event loop


class Service:
    """The model, its batchers and worker thread, and the optional search index."""

    def __init__(self, predictor: Any, settings: ServeSettings, index: Any = None) -> None:
        from plait.tasks.aligned_predictor import AlignedPredictor

        self.predictor = predictor
        self.settings = settings
        self.index = index
        self.aligned = isinstance(predictor, AlignedPredictor) or hasattr(predictor, "pair")
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="plait-model")
        self.ready = False
        # exact Shapley attribution reads the model's modality list (an ONNX stand-in
        # may not have one: then /v1/explain is not offered)
        self.explainable = not self.aligned and hasattr(predictor.model, "modalities")
        self.batchers: dict[str, MicroBatcher[CheckedRow, list[Outcome]]] = {}
        self.arriving: Counter[str] = Counter()  # see middleware.ServiceMiddleware
        work: dict[str, Callable[[list[list[CheckedRow]]], list[list[Outcome]]]]
        if self.aligned:
            work = {"embed": lambda reqs: runner.embed_batch(predictor, reqs)}
        else:
            work = {
                "predict": lambda reqs: runner.predict_batch(predictor, reqs),
                "explain": lambda reqs: runner.explain_batch(predictor, reqs),
            }
        for name, fn in work.items():
            self.batchers[name] = MicroBatcher(
                fn,
                self.executor,
                max_size=settings.max_batch_size,
                max_wait_s=settings.max_wait_ms / 1000,
                on_batch=self.metrics.batch_rows.labels(f"{PREFIX}/{name}").observe,
                arriving=partial(self.arriving.__getitem__, f"{PREFIX}/{name}"),
            )
            self.arriving[f"{PREFIX}/{name}"] = 0
        self.items: dict[str, int] = {}
        if index is not None:
            self.items = {item: i for i, item in enumerate(index.ids)}

    @property
    def names(self) -> list[str]:
        """The modalities a request may fill, by name."""
        if self.aligned:
            return list(self.predictor.pair)
        return list(self.predictor.config.modalities)

    async def start(self) -> None:
        for batcher in self.batchers.values():
            batcher.start()
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        for batcher in self.batchers.values():
            await batcher.stop()
        self.executor.shutdown(wait=True)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in the model thread, bounded by the request timeout."""
        loop = asyncio.get_running_loop()
        return await self.bounded(
            asyncio.ensure_future(loop.run_in_executor(self.executor, fn, *args))
        )

    async def bounded(
        self, future: asyncio.Future[Any], batcher: MicroBatcher[Any, Any] | None = None
    ) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.settings.timeout_s)
        except asyncio.TimeoutError:
            if batcher is not None:
                batcher.abandon(future)  # dropped if queued; a running batch finishes
            else:
                future.cancel()
            raise ApiError(
                504,
                "timeout",
                f"the model did not answer within {self.settings.timeout_s:g} s; retry, or "
                "send fewer rows",
            ) from None


def card_of(service: Service, endpoints: list[str]) -> dict[str, Any]:
    predictor, settings = service.predictor, service.settings
    config = predictor.config
    labels = [str(n) for n in predictor.labels.names] if predictor.labels is not None else None
    return {
        "name": config.name,
        "task": predictor.task,
        "runtime": settings.runtime,
        "auth": settings.api_key is not None,
        "modalities": [
            {"name": n, "kind": config.modalities[n].kind, "column": config.modalities[n].column}
            for n in service.names
        ],
        "labels": labels,
        "pair": list(predictor.pair) if service.aligned else None,
        "index": service.index is not None,
        "endpoints": endpoints,
        "limits": {
            "max_body_bytes": settings.max_body_bytes,
            "max_image_pixels": settings.max_image_pixels,
            "max_audio_seconds": settings.max_audio_seconds,
            "max_text_chars": settings.max_text_chars,
            "max_rows": settings.max_rows,
            "content_types": settings.content_types,
        },
        "batching": {
            "max_batch_size": settings.max_batch_size,
            "max_wait_ms": settings.max_wait_ms,
        },
        "card_markdown": predictor.model_card(),
    }


def _rows_response(
    request: Request, outcomes: list[Outcome], checker: RowChecker, empty: dict[str, Any]
) -> JSONResponse:
    """`{"rows": [...]}`; when every row failed, the first row's status and error."""
    rows = []
    for i, outcome in enumerate(outcomes):
        row: dict[str, Any] = {"index": i, **empty, **(outcome.fields or {})}
        row["error"] = checker.readable(outcome.error.message) if outcome.error else None
        if outcome.error:
            row["error_code"] = outcome.error.code
        rows.append(row)
    request_id = request.state.request_id
    failed = [o.error for o in outcomes if o.error is not None]
    if outcomes and len(failed) == len(outcomes):
        first = failed[0]
        body = envelope(first.code, checker.readable(first.message), request_id, rows=rows)
        return JSONResponse(body, status_code=first.status)
    return JSONResponse({"rows": rows, "request_id": request_id})


def create_app(predictor: Any, settings: ServeSettings | None = None, index: Any = None) -> FastAPI:
    """A FastAPI app serving `predictor` (a loaded `Predictor` or `AlignedPredictor`, or
    an ONNX predictor with the same calls); `index` (an `EmbeddingIndex` built with this
    model) enables /v1/search. Start it with uvicorn (`plait serve` does)."""
    settings = settings or ServeSettings()
    service = Service(predictor, settings, index)
    if index is not None and not service.aligned:
        raise PlaitError("--index needs an aligned model: search embeds queries with its towers")
    if index is not None and index.dim != predictor.dim:
        raise PlaitError(
            f"the index holds {index.dim}-dimensional vectors but the model embeds into "
            f"{predictor.dim}: serve the model that built the index"
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        log.info(
            "ready: %s (%s), runtime %s", predictor.config.name, predictor.task, settings.runtime
        )
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title=f"Plait: {predictor.config.name}",
        summary="A trained Plait model over HTTP (see /v1/card)",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service
    _error_handlers(app)

    bearer = HTTPBearer(auto_error=False, description="PLAIT_API_KEY of the server")
    header_key = APIKeyHeader(name="X-API-Key", auto_error=False)

    def authorized(
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
        key: str | None = Security(header_key),
    ) -> None:
        if settings.api_key is None:
            return
        given = credentials.credentials if credentials is not None else key
        secret = settings.api_key.get_secret_value()
        if not given or not hmac.compare_digest(given.encode(), secret.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong API key: send `Authorization: Bearer <key>`",
                {"WWW-Authenticate": "Bearer"},
            )

    health = APIRouter(prefix=f"{PREFIX}/health", tags=["health"])

    @health.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @health.get("/ready")
    async def ready() -> Response:
        if not service.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready"})

    api = APIRouter(prefix=PREFIX, dependencies=[Depends(authorized)], tags=["model"])
    endpoints: list[str] = []

    @api.get("/card")
    async def card() -> dict[str, Any]:
        return card_of(service, endpoints)

    async def batched(request: Request, name: str, empty: dict[str, Any]) -> JSONResponse:
        rows = await read_rows(request, settings)
        checker = RowChecker(predictor.config, settings, service.names)
        try:
            if _upload_bytes(rows) < INLINE_CHECK_BYTES:  # a thread hop costs more
                checked = checker.check(rows)
            else:
                checked = await run_in_threadpool(checker.check, rows)
            batcher = service.batchers[name]
            future = batcher.submit(checked)
            arrived(request.scope)
        except BaseException:
            checker.cleanup()
            raise
        future.add_done_callback(lambda _: checker.cleanup())  # once the model is done
        outcomes = await service.bounded(future, batcher)
        return _rows_response(request, outcomes, checker, empty)

    body_doc = _rows_openapi()
    if not service.aligned:

        @api.post("/predict", openapi_extra=body_doc)
        async def predict(request: Request) -> JSONResponse:
            """One row (multipart) or many (JSON): each row its prediction or its error."""
            return await batched(request, "predict", {"prediction": None, "probabilities": None})

        if service.explainable:

            @api.post("/explain", openapi_extra=body_doc)
            async def explain(request: Request) -> JSONResponse:
                """As predict, plus each modality's Shapley contribution (`attribution`)."""
                empty = {"prediction": None, "probabilities": None, "attribution": None}
                return await batched(request, "explain", empty)

    else:

        @api.post("/embed", openapi_extra=body_doc)
        async def embed(request: Request) -> JSONResponse:
            """Each row's unit vector per aligned modality it has."""
            return await batched(request, "embed", {"embeddings": None})

        @api.post("/similarity")
        async def similarity(request: Request) -> JSONResponse:
            """Cosine of one query value to each candidate value of the other modality."""
            query, candidates = await _similarity_input(request, service)
            checker = RowChecker(predictor.config, settings, service.names)
            try:
                (qname, qvalue), (cname, cvalues) = query, candidates
                qpath = await run_in_threadpool(checker.rejecting, 0, qname, qvalue)
                cpaths = [
                    await run_in_threadpool(checker.rejecting, i + 1, cname, v)
                    for i, v in enumerate(cvalues)
                ]
                scores = await service.call(
                    runner.similarity, predictor, (qname, qpath), (cname, cpaths)
                )
            finally:
                checker.cleanup()
            return JSONResponse(
                {
                    "scores": scores,
                    "query_modality": qname,
                    "candidate_modality": cname,
                    "request_id": request.state.request_id,
                }
            )

        if any(predictor.config.modalities[n].kind == "text" for n in predictor.pair):

            @api.post("/zeroshot")
            async def zeroshot(request: Request) -> JSONResponse:
                """Class probabilities of one value from prompts built from `classes`."""
                row, classes = await _zeroshot_input(request, service)
                checker = RowChecker(predictor.config, settings, service.names)
                try:
                    (checked,) = await run_in_threadpool(checker.check, [row])
                    if checked.error is not None:
                        raise ApiError(
                            checked.error.status,
                            checked.error.code,
                            checker.readable(checked.error.message),
                        )
                    result = await service.call(runner.zeroshot, predictor, checked, classes)
                except PlaitError as exc:
                    raise ApiError(422, "unreadable_input", checker.readable(str(exc))) from None
                finally:
                    checker.cleanup()
                return JSONResponse({**result, "request_id": request.state.request_id})

        if index is not None:
            _search_routes(api, service)

    app.include_router(health)
    app.include_router(api)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        page = STATIC / "index.html"
        if not page.is_file():
            raise ApiError(404, "no_page", "this install ships no web page; use the /v1 API")
        return FileResponse(page, media_type="text/html")

    # FastAPI may include routers lazily: read the paths from the routers themselves
    known = {str(getattr(r, "path", "")) for r in [*health.routes, *api.routes]}
    known |= {"/metrics", "/", "/docs", "/openapi.json"}
    endpoints.extend(sorted(p for p in known if p.startswith(PREFIX)))
    app.add_middleware(
        ServiceMiddleware,
        settings=settings,
        metrics=service.metrics,
        known=known,
        arriving=service.arriving,
    )
    return app


# --------------------------------------------------------------------------- inputs
async def _json_or_form(request: Request) -> tuple[Any, list[tuple[str, Value]] | None]:
    kind = media_type(request)
    if kind == JSON:
        return await json_body(request), None
    if kind in FORMS:
        return None, await form_fields(request, request.app.state.service.settings)
    raise ApiError(
        415, "unsupported_media_type", f"send {JSON} or {FORM}; got '{kind or 'nothing'}'"
    )


def _tower_of(service: Service, value: Value, given: str | None = None) -> str:
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


def _named(service: Service, raw: Any, where: str) -> tuple[str | None, Any]:
    """`{"<modality>": value}` -> (name, value); a bare value -> (None, value)."""
    if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) not in ("base64",):
        ((name, value),) = raw.items()
        return name, value
    return None, raw


async def _similarity_input(
    request: Request, service: Service
) -> tuple[tuple[str, Value], tuple[str, list[Value]]]:
    body, fields = await _json_or_form(request)
    limit = service.settings.max_rows
    if fields is not None:
        files = [(n, v) for n, v in fields if isinstance(v, Upload)]
        texts = [v for _, v in fields if isinstance(v, str)]
        if len(files) != 1 or not texts:
            raise ApiError(
                422, "invalid_request", "send one file field (`file`) and one or more `text` fields"
            )
        name, upload = files[0]
        qname = _tower_of(service, upload, None if name == "file" else name)
        query: tuple[str, Value] = (qname, upload)
        cands: list[Value] = list(texts)
        cname = _tower_of(service, cands[0])
    else:
        if not isinstance(body, dict) or set(body) - {"query", "candidates"} or "query" not in body:
            raise ApiError(
                422, "invalid_request", 'send {"query": <value>, "candidates": [<values>]}'
            )
        given, raw = _named(service, body["query"], "query")
        qvalue = value_of(raw, "query")
        query = (_tower_of(service, qvalue, given), qvalue)
        raw_c = body.get("candidates")
        cgiven = None
        if isinstance(raw_c, dict) and len(raw_c) == 1:
            ((cgiven, raw_c),) = raw_c.items()
        if not isinstance(raw_c, list) or not raw_c:
            raise ApiError(422, "invalid_request", "`candidates` must be a non-empty list")
        cands = [value_of(v, f"candidates[{i}]") for i, v in enumerate(raw_c)]
        cname = _tower_of(service, cands[0], cgiven)
    if len(cands) > limit:
        raise ApiError(413, "too_many_rows", f"{len(cands)} candidates; at most {limit}")
    if cname == query[0]:
        raise ApiError(422, "invalid_request", "query and candidates must be different modalities")
    return query, (cname, cands)


async def _zeroshot_input(request: Request, service: Service) -> tuple[dict[str, Any], list[str]]:
    body, fields = await _json_or_form(request)
    if fields is not None:
        classes = [v for n, v in fields if n == "classes" and isinstance(v, str)]
        if len(classes) == 1 and "," in classes[0]:
            classes = [c.strip() for c in classes[0].split(",")]
        rest = [(("" if n == "file" else n), v) for n, v in fields if n != "classes"]
        if len(rest) != 1:
            raise ApiError(422, "invalid_request", "send one value field and `classes`")
        ((name, value),) = rest
        row = {_tower_of(service, value, name or None): value}
    else:
        if not isinstance(body, dict) or "query" not in body or "classes" not in body:
            raise ApiError(422, "invalid_request", 'send {"query": <value>, "classes": [str]}')
        given, raw = _named(service, body["query"], "query")
        value = value_of(raw, "query")
        row = {_tower_of(service, value, given): value}
        classes = body["classes"]
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) and c.strip() for c in classes)
    ):
        raise ApiError(422, "invalid_request", "`classes` must list at least two class names")
    return row, [c.strip() for c in classes]


def _search_routes(api: APIRouter, service: Service) -> None:
    from plait.retrieval.search import shown_columns

    index, predictor = service.index, service.predictor
    columns = shown_columns(index, None)
    media_column = index.info.get("column")
    kind = index.info.get("kind") or index.info.get("modality")

    @api.post("/search")
    async def search(request: Request) -> JSONResponse:
        """The k indexed items nearest to one query (any tower of the model)."""
        body, fields = await _json_or_form(request)
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
        name = _tower_of(service, value, given)
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


def _upload_bytes(rows: list[dict[str, Value | None]]) -> int:
    return sum(len(v.data) for row in rows for v in row.values() if isinstance(v, Upload))


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


def _rows_openapi() -> dict[str, Any]:
    from plait.serve.uploads import RowsRequest

    return {
        "requestBody": {
            "required": True,
            "content": {
                JSON: {"schema": RowsRequest.model_json_schema()},
                FORM: {
                    "schema": {
                        "type": "object",
                        "description": "one row: a field per modality (files for image/audio)",
                    }
                },
            },
        }
    }


def _error_handlers(app: FastAPI) -> None:
    def rid(request: Request) -> str:
        return str(getattr(request.state, "request_id", "-"))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            envelope(exc.code, exc.message, rid(request)), exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(envelope("invalid_request", str(exc.errors()[:3]), rid(request)), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            envelope(code, str(exc.detail), rid(request)), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(PlaitError)
    async def plait_error(request: Request, exc: PlaitError) -> JSONResponse:
        return JSONResponse(envelope("bad_input", str(exc), rid(request)), 422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("[%s] internal error on %s", rid(request), request.url.path)
        return JSONResponse(
            envelope(
                "internal_error", "the service failed on this request; see its log", rid(request)
            ),
            500,
        )
