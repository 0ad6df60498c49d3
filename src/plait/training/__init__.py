"""Training on Lightning. The only package that imports Lightning."""

from plait.training.fit import RunResult, fit

__all__ = ["RunResult", "fit"]
