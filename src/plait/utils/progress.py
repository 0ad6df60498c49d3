"""The one progress bar of Plait's long loops (row checks, embedding, indexing, builders).

Drawn with rich on stderr, and only where a person watches: never when the caller turned it
off, never for a loop shorter than `min_total` (it would finish before the bar is worth
drawing) and never when stderr is not a terminal (a log file or a CI job would get control
codes). Training has Lightning's own bar and does not use this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

Advance = Callable[..., None]
"""`advance(steps=1)`: move the bar on by `steps` items."""


def _no_bar(steps: int = 1) -> None:
    return None


@contextmanager
def progress_bar(
    enabled: bool, description: str, total: int, *, min_total: int = 1
) -> Iterator[Advance]:
    """Yield `advance(steps=1)` for a loop over `total` items; draw a bar when it helps."""
    if not enabled or total < max(min_total, 1):
        yield _no_bar
        return
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    if not console.is_terminal:
        log.info("%s: %d item(s)", description, total)
        yield _no_bar
        return
    with Progress(transient=True, console=console) as bar:
        task = bar.add_task(description, total=total)

        def advance(steps: int = 1) -> None:
            bar.advance(task, steps)

        yield advance
