"""Training on Lightning. The only package that imports Lightning."""

from plait.training.fit import TrainedRun, fit

__all__ = ["TrainedRun", "fit"]
