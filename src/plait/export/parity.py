"""Parity of an exported graph with the PyTorch model it came from, on real rows.

Every export compares the two on batches of the user's rows at batch sizes and
sequence / audio lengths other than the export sample's, and (supervised graphs) with
each modality masked out in turn, since a missing modality takes another path through
every fusion. Three numbers per case: the max absolute difference of the outputs, the
share of rows whose argmax agrees, and the lowest cosine between a row's two outputs
(the embedding check for aligned towers). Above the tolerance the export is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: a processor tensor key -> the spectrogram keys whose frame count the cases vary
FRAME_KEYS = ("features",)


@dataclass(frozen=True)
class Tolerance:
    """Refuse an export whose outputs differ more than this from PyTorch's."""

    max_abs: float = 1e-4
    min_cosine: float = 0.9999


@dataclass
class CaseResult:
    graph: str
    case: str
    batch: int
    max_abs: float
    argmax_agree: float
    min_cosine: float
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ParityCase:
    """One batch fed to both sides: what it tests, and its inputs."""

    name: str
    inputs: dict[str, dict[str, Tensor]]
    presence: dict[str, Tensor]

    @property
    def batch(self) -> int:
        return len(next(iter(self.presence.values())))


def compare(
    graph: str, case: str, torch_out: np.ndarray, onnx_out: np.ndarray, tolerance: Tolerance
) -> CaseResult:
    """The three numbers for one case's outputs [B, K]."""
    a = torch_out.astype(np.float64).reshape(len(torch_out), -1)
    b = onnx_out.astype(np.float64).reshape(len(onnx_out), -1)
    if a.shape != b.shape:
        return CaseResult(graph, case, len(a), float("inf"), 0.0, -1.0, False)
    diff = float(np.abs(a - b).max()) if a.size else 0.0
    agree = float((a.argmax(1) == b.argmax(1)).mean()) if a.shape[1] > 1 else 1.0
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(norms > 0, (a * b).sum(1) / np.maximum(norms, 1e-30), 1.0)
    cosine = float(cos.min()) if len(cos) else 1.0
    finite = bool(np.isfinite(b).all()) and bool(np.isfinite(a).all())
    ok = finite and diff <= tolerance.max_abs and cosine >= tolerance.min_cosine
    return CaseResult(graph, case, len(a), diff, agree, cosine, ok)


def resize_lengths(
    inputs: Mapping[str, Mapping[str, Tensor]],
    kinds: Mapping[str, str],
    pad_values: Callable[[str, str], float],
    max_tokens: Mapping[str, int | None],
    *,
    extra_tokens: int = 0,
    frames: Callable[[int], int] | None = None,
    samples: Callable[[int], int] | None = None,
) -> tuple[dict[str, dict[str, Tensor]], list[str]]:
    """The same rows at other lengths, and what changed: text padded by `extra_tokens`
    more pad tokens (or cut by as many when the processor's maximum forbids more),
    spectrogram frames cut to `frames(n)`, waveform samples (Hugging Face audio towers:
    input values and their mask) cut to `samples(n)`."""
    out: dict[str, dict[str, Tensor]] = {}
    changes: set[str] = set()
    for m, tensors in inputs.items():
        out[m] = {}
        for key, t in tensors.items():
            if kinds[m] == "text" and t.dim() >= 2 and extra_tokens:
                limit = max_tokens.get(m)
                if limit is None or t.shape[1] + extra_tokens <= limit:
                    pad = (0, extra_tokens)
                    t = torch.nn.functional.pad(t, pad, value=pad_values(m, key))  # [B, T + e]
                    changes.add(f"tokens +{extra_tokens}")
                else:
                    t = t[:, : max(1, t.shape[1] - extra_tokens)]  # [B, T - e]
                    changes.add(f"tokens -{extra_tokens}")
            elif kinds[m] == "audio" and key in FRAME_KEYS and frames is not None:
                t = t[..., : max(1, frames(t.shape[-1]))].contiguous()  # [B, 1, M, F']
                changes.add(f"{t.shape[-1]} frames")
            elif kinds[m] == "audio" and t.dim() == 2 and samples is not None:
                t = t[:, : max(1, samples(t.shape[1]))].contiguous()  # [B, S']
                changes.add(f"{t.shape[1]} samples")
            out[m][key] = t
    return out, sorted(changes)


def mask_out(case: ParityCase, modality: str) -> ParityCase:
    """The same rows with `modality` missing everywhere."""
    presence = dict(case.presence)
    presence[modality] = torch.zeros_like(presence[modality])
    return ParityCase(f"{case.name}, no {modality}", case.inputs, presence)
