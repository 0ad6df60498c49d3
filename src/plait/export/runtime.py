"""ONNX Runtime sessions: the provider asked for is the provider used, or an error.

ONNX Runtime quietly falls back to the CPU when a requested provider cannot start (a
missing CUDA library, say); Plait logs the providers a session really runs on and warns
loudly when that is not the first one asked for, and refuses a provider this ONNX
Runtime build does not have at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from plait.errors import PlaitError

log = logging.getLogger(__name__)

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


def open_session(
    path: str | Path,
    providers: Sequence[str] | None = None,
    *,
    threads: int | None = None,
    quiet: bool = False,
) -> ort.InferenceSession:
    """An inference session on `path` over `providers` (default CPU).

    Args:
        threads: intra-op threads (None: ONNX Runtime's default, one per core).
        quiet: log the provider at debug level (parity checks open many sessions).

    Raises:
        PlaitError: a provider this ONNX Runtime does not offer, or a file it cannot load.
    """
    wanted = list(providers or DEFAULT_PROVIDERS)
    available = ort.get_available_providers()
    missing = [p for p in wanted if p not in available]
    if missing:
        raise PlaitError(
            f"ONNX Runtime provider {', '.join(missing)} is not available in this install "
            f"(available: {', '.join(available)}); install the matching onnxruntime build "
            "or ask for one of those"
        )
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # ORT's own warnings are about graph optimisation
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    except Exception as exc:  # ORT raises its own exception types for unreadable graphs
        raise PlaitError(f"{path}: ONNX Runtime cannot load this graph: {exc}") from None
    used = session.get_providers()
    if used[0] != wanted[0]:
        log.warning(
            "ONNX Runtime runs %s on %s, NOT on the requested %s (that provider failed to "
            "start; check its libraries)",
            Path(path).name,
            used[0],
            wanted[0],
        )
    else:
        (log.debug if quiet else log.info)(
            "ONNX Runtime runs %s on %s", Path(path).name, ", ".join(used)
        )
    return session
