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


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (SIGINT) or SIGTERM after writing a resumable checkpoint.

    A KeyboardInterrupt, so code that stops on Ctrl-C stops on it too; `exit_code` is the
    shell's convention for the signal (130 for SIGINT, 143 for SIGTERM), so a scheduler
    or script sees that the run did not finish.
    """

    def __init__(self, signal_name: str, run_dir: str, checkpoint: str, epochs_done: int) -> None:
        self.signal_name = signal_name
        self.run_dir = run_dir
        self.checkpoint = checkpoint
        self.epochs_done = epochs_done
        self.exit_code = 143 if signal_name == "SIGTERM" else 130
        super().__init__(
            f"training stopped by {signal_name}; {self.saved}; continue with --resume ({run_dir})"
        )

    @property
    def saved(self) -> str:
        """What the checkpoint holds, in words."""
        epochs = (
            "no finished epoch yet"
            if self.epochs_done == 0
            else (f"{self.epochs_done} finished epoch(s)")
        )
        return f"{self.checkpoint} holds the run after {epochs}"
