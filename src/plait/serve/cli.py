"""`plait serve MODEL`: the model's HTTP service, with uvicorn.

Registered in `plait.cli`; everything heavy is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plait.utils.commands import run_command


def serve_command(
    model: Annotated[Path, typer.Argument(help="A saved model folder (or an ONNX export folder).")],
    index: Annotated[
        Path | None,
        typer.Option(
            help="An index folder built with this model (`plait index build`): enables /v1/search."
        ),
    ] = None,
    runtime: Annotated[
        str, typer.Option(help="`torch` (the saved PyTorch model) or `onnx` (ONNX Runtime).")
    ] = "torch",
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. Anything but 127.0.0.1/localhost needs the API key "
            "in the environment variable PLAIT_API_KEY."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_batch_size: Annotated[
        int,
        typer.Option(help="Rows per model call when requests arrive together (1: no batching)."),
    ] = 32,
    max_wait_ms: Annotated[
        float,
        typer.Option(help="While traffic flows, how long a batch waits for more rows (ms)."),
    ] = 5.0,
    max_body_mb: Annotated[
        float, typer.Option(help="Largest request body (MB); more gets 413.")
    ] = 20.0,
    max_image_pixels: Annotated[
        int, typer.Option(help="Largest image, width x height, read from its header (413).")
    ] = 40_000_000,
    max_audio_seconds: Annotated[
        float, typer.Option(help="Longest audio, read from its header (413).")
    ] = 60.0,
    max_text_chars: Annotated[int, typer.Option(help="Longest text field (413).")] = 10_000,
    max_rows: Annotated[int, typer.Option(help="Rows in one request (413).")] = 64,
    max_concurrency: Annotated[
        int, typer.Option(help="Requests answered at once; more get 503 with Retry-After.")
    ] = 64,
    timeout: Annotated[float, typer.Option(help="Seconds a request may take before 504.")] = 30.0,
    threads: Annotated[
        int, typer.Option(help="Torch threads for the model (0: Plait's default).")
    ] = 0,
) -> None:
    """Serve a trained model over HTTP: predict, explain, embed, search, caption, a web page at /.

    The API key (needed off-loopback) is read from PLAIT_API_KEY only, never from the
    command line, so it does not land in shell history or `ps` output.
    """

    def action() -> None:
        import uvicorn

        from plait.errors import PlaitError
        from plait.serve.app import create_app
        from plait.serve.loading import load_for_serving
        from plait.serve.settings import ServeSettings
        from plait.threads import configure_threads

        if runtime not in ("torch", "onnx"):
            raise PlaitError(f"--runtime must be torch or onnx, got {runtime!r}")
        settings = ServeSettings(
            host=host,
            port=port,
            runtime=runtime,  # type: ignore[arg-type]
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_body_bytes=int(max_body_mb * 2**20),
            max_image_pixels=max_image_pixels,
            max_audio_seconds=max_audio_seconds,
            max_text_chars=max_text_chars,
            max_rows=max_rows,
            max_concurrency=max_concurrency,
            timeout_s=timeout,
        ).with_env_key()
        settings.check_exposure()
        configure_threads(threads)
        predictor, loaded_index = load_for_serving(model, index, runtime)
        app = create_app(predictor, settings, loaded_index)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=_log_config(),
            timeout_graceful_shutdown=int(max(1, timeout)),
            access_log=False,
        )
        uvicorn.Server(config).run()

    run_command(action)


def _log_config() -> dict:
    """uvicorn's and Plait's log lines on stderr (each request line carries its id)."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": fmt}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "plait": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }
