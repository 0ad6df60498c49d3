"""The shared progress bar: drawn only when enabled, long enough and on a terminal."""

from __future__ import annotations

import pytest
import rich.console

from plait.utils.progress import progress_bar


class _Console(rich.console.Console):
    """A console that records what it prints and says whether it is a terminal."""

    terminal = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.pop("stderr", None)
        super().__init__(record=True, force_terminal=self.terminal, width=80)  # type: ignore[arg-type]
        _Console.made.append(self)

    made: list[rich.console.Console] = []


@pytest.fixture
def consoles(monkeypatch: pytest.MonkeyPatch) -> list[rich.console.Console]:
    _Console.made = []
    _Console.terminal = True
    monkeypatch.setattr(rich.console, "Console", _Console)
    return _Console.made


def _run(enabled: bool, total: int, min_total: int = 1) -> None:
    with progress_bar(enabled, "checking rows", total, min_total=min_total) as advance:
        for _ in range(total):
            advance()
        advance(0)


def test_a_bar_is_drawn_on_a_terminal(consoles: list[rich.console.Console]) -> None:
    _run(True, 300, min_total=256)
    assert len(consoles) == 1 and "checking rows" in consoles[0].export_text()


def test_no_bar_when_disabled_or_small(consoles: list[rich.console.Console]) -> None:
    _run(False, 300)
    _run(True, 100, min_total=256)
    _run(True, 0)
    assert consoles == []


def test_no_bar_when_stderr_is_not_a_terminal(consoles: list[rich.console.Console]) -> None:
    _Console.terminal = False
    _run(True, 300)
    assert len(consoles) == 1 and consoles[0].export_text() == ""
