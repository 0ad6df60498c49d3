"""CPU thread defaults.

Measured in `bench/threads.py` (see bench/RESULTS.md): on small BatchNorm-heavy CNNs the
intra-op thread pool costs more in synchronisation than it gains, so Plait uses one
intra-op thread per process on machines with few cores unless told otherwise.
"""

from __future__ import annotations

import os

import torch


def default_threads() -> int:
    cores = os.cpu_count() or 1
    return 1 if cores <= 4 else min(cores // 2, 8)


def configure_threads(threads: int = 0) -> int:
    """Set torch's intra-op threads (`0` = Plait's measured default); return the value."""
    count = threads or default_threads()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
