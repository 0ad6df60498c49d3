"""The HTTP service of one trained model: `create_app(predictor, settings, index)`.

Endpoints and their JSON shapes are the contract in the README's "Serve a model"
section. The event loop only parses, checks and answers; every model call runs in one
worker thread (torch already uses the cores), rows of concurrent requests batched by
`MicroBatcher`. The page shipped in `static/` is served at `/`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from plait.serve.asks import ask_routes
from plait.serve.captions import caption_routes
from plait.serve.errors import ApiError, envelope
from plait.serve.inputs import similarity_input, zeroshot_input
from plait.serve.middleware import ServiceMiddleware, arrived
from plait.serve.requests import (
    FORM,
    JSON,
    read_rows,
)
from plait.serve.responses import rows_response
from plait.serve.search import search_routes
from plait.serve.service import PREFIX, Service, card_of
from plait.serve.settings import ServeSettings
from plait.serve.uploads import RowChecker, Upload, Value

log = logging.getLogger("plait.serve")
STATIC = Path(__file__).parent / "static"
INLINE_CHECK_BYTES = 1 << 20  # smaller uploads are checked and written on the event loop


def create_app(predictor: Any, settings: ServeSettings | None = None, index: Any = None) -> FastAPI:
    """A FastAPI app serving `predictor` (a loaded `Predictor`, `AlignedPredictor`,
    `CaptioningPredictor` or `VqaPredictor`, or an ONNX predictor with the same calls);
    `index` (an `EmbeddingIndex` built with this model) enables /v1/search. Start it with
    uvicorn (`plait serve` does)."""
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

    async def authorized(  # async: a sync dependency would cost a thread hop per request
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
        return rows_response(request.state.request_id, outcomes, checker, empty)

    body_doc = _rows_openapi()
    if service.captioning:
        caption_routes(api, service)
    elif service.vqa:
        ask_routes(api, service)
    elif not service.aligned:

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
            query, candidates = await similarity_input(request, service)
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
                row, classes = await zeroshot_input(request, service)
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
            search_routes(api, service)

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
    hidden = {
        str(getattr(r, "path", "")) for r in api.routes if not getattr(r, "include_in_schema", True)
    }
    endpoints.extend(sorted(p for p in known if p.startswith(PREFIX) and p not in hidden))
    app.add_middleware(
        ServiceMiddleware,
        settings=settings,
        metrics=service.metrics,
        known=known,
        arriving=service.arriving,
    )
    return app


# --------------------------------------------------------------------------- inputs


def _upload_bytes(rows: list[dict[str, Value | None]]) -> int:
    return sum(len(v.data) for row in rows for v in row.values() if isinstance(v, Upload))


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
