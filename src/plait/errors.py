"""Errors a user can act on: each names the file, row and column involved."""

from __future__ import annotations

from dataclasses import dataclass


class PlaitError(Exception):
    """Base class: anything Plait raises on purpose."""


class ConfigError(PlaitError, ValueError):
    """The config is invalid; the message names the key and suggests the closest valid one."""


@dataclass(frozen=True)
class RowProblem:
    """One bad row: where it is and why it was rejected."""

    file: str
    row: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        column = f", column '{self.column}'" if self.column else ""
        return f"{self.file}, row {self.row}{column}: {self.reason}"


class DataError(PlaitError, ValueError):
    """Bad input data. `problems` lists every bad row found, not only the first."""

    def __init__(self, message: str, problems: list[RowProblem] | None = None) -> None:
        self.problems = list(problems or [])
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{message}\n{shown}{more}" if shown else message)
