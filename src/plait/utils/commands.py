"""How every command runs its body, in one place for `plait.cli` and the commands that
live beside their packages (export, compress, serve, caption, describe, ask).

Logging goes to stderr as plain messages, with the chatty third-party loggers turned down
(faiss says which CPU build it picked; httpx logs every request a large-model backend
sends); Plait's own errors print as one line and exit 2, with no traceback; Ctrl-C (and
the SIGTERM a training run turns into an interrupt) prints what happened and exits with
the interrupt's status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

EXIT_ERROR = 2  # a PlaitError: nothing (or nothing complete) was written
EXIT_SKIPPED = 3  # some rows could not be read or sent: their outputs are empty
QUIET_LOGGERS = ("faiss.loader", "httpx")

console = Console(stderr=True)


def setup_logging() -> None:
    """Plain INFO messages on stderr; the loggers in `QUIET_LOGGERS` at WARNING."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def fail(message: object) -> NoReturn:
    """Print `error: message` and exit 2. The message is plain text: a path like
    `scans[old]/x.png` must not be read as rich markup, nor broken across lines."""
    console.print(f"[bold red]error:[/] {escape(str(message))}", soft_wrap=True)
    raise typer.Exit(code=EXIT_ERROR)


def run_command(action: Callable[[], Any]) -> Any:
    """Run a command body with logging set up; a PlaitError or an interrupt becomes one
    clear message and its exit status."""
    from plait.errors import PlaitError

    setup_logging()
    try:
        return action()
    except PlaitError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        console.print(f"[yellow]interrupted[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(code=getattr(exc, "exit_code", 130)) from None
