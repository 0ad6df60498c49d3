"""Every command's body runs the same way: one error line and exit 2 for Plait's errors,
the interrupt's status for Ctrl-C / SIGTERM, chatty third-party loggers turned down."""

from __future__ import annotations

import logging

import pytest
import typer

from plait.errors import PlaitError
from plait.utils.commands import EXIT_ERROR, QUIET_LOGGERS, run_command


def test_the_result_comes_back():
    assert run_command(lambda: 42) == 42


def test_a_plait_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]):
    def broken() -> None:
        raise PlaitError("rows.csv, row 3, column `image`: [not] an image")

    with pytest.raises(typer.Exit) as exited:
        run_command(broken)
    assert exited.value.exit_code == EXIT_ERROR
    err = capsys.readouterr().err
    assert "rows.csv, row 3, column `image`: [not] an image" in err  # markup left as text
    assert "Traceback" not in err


def test_an_interrupt_exits_with_its_status(capsys: pytest.CaptureFixture[str]):
    def stopped() -> None:
        exc = KeyboardInterrupt("by SIGTERM")
        exc.exit_code = 143  # type: ignore[attr-defined]
        raise exc

    with pytest.raises(typer.Exit) as exited:
        run_command(stopped)
    assert exited.value.exit_code == 143
    assert "interrupted" in capsys.readouterr().err


def test_other_errors_are_not_swallowed():
    with pytest.raises(ZeroDivisionError):
        run_command(lambda: 1 / 0)


def test_request_logs_of_http_clients_stay_quiet():
    run_command(lambda: None)
    for name in QUIET_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    assert "httpx" in QUIET_LOGGERS
