"""The model behind the service: the predictor, its batchers and worker thread, the
optional search index, and the card that describes them (`GET /v1/card`)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from plait.serve import runner
from plait.serve.batcher import MicroBatcher
from plait.serve.errors import ApiError
from plait.serve.metrics import Metrics
from plait.serve.runner import Outcome
from plait.serve.settings import ServeSettings
from plait.serve.uploads import CheckedRow

PREFIX = "/v1"


class Service:
    """The model, its batchers and worker thread, and the optional search index."""

    def __init__(self, predictor: Any, settings: ServeSettings, index: Any = None) -> None:
        from plait.errors import PlaitError
        from plait.tasks.aligned_predictor import AlignedPredictor

        if getattr(predictor, "task", None) == "captioning":
            raise PlaitError(
                "serving captioning models is not built yet; caption with `plait caption`"
            )
        if getattr(predictor, "task", None) == "vqa":
            raise PlaitError("serving question answerers is not built yet; use `plait ask`")
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
