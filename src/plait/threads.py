"""CPU thread defaults.

Measured by `bench/threads.py` (bench/RESULTS.md): for small BatchNorm CNNs on a 2-core
machine, 2 intra-op threads take ~0.6x the time of 1 when the cores are free, but
1.3-2.2x when one other busy process competes for a core. So Plait gives each training
process an equal share of the cores, counting its own DDP processes and data-loader
workers as competitors, and never oversubscribes.
"""

from __future__ import annotations

import os

import torch


def default_threads(processes: int = 1, workers: int = 0) -> int:
    """Cores per busy process: `processes` trainers each with `workers` loader workers."""
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, processes * (1 + workers)))


def configure_threads(threads: int = 0, processes: int = 1, workers: int = 0) -> int:
    """Set torch's intra-op threads (`0` = Plait's measured default); return the value."""
    count = threads or default_threads(processes, workers)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
