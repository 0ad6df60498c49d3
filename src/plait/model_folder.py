"""The saved-model folder shared by supervised and aligned models (no pickles)::

    config.yaml          the resolved run config
    model.safetensors    all weights, pretrained towers included
    labels.json          the label space (absent for an aligned run without labels)
    processors/<name>/   tokenizer, vocabulary or feature-extractor settings
    hub/<name>/          Hugging Face architecture config, so the model rebuilds offline
    metrics.json         test metrics at save time (when known)
    README.md            a short model card (yours to edit: not checksummed)
    manifest.json        format version, task + size and sha256 of every other file

Each predictor adds only what is its own (the model card, an aligned model's
`hub/_dual/`) and how the architecture is rebuilt.

A save never leaves a half-written folder where a good one was: the folder is written to
a hidden staging folder beside it (`.<name>.staging`), `manifest.json` is written last as
the mark of a complete folder, and only then is it swapped in for the old one
(`plait.utils.io.atomic_write_folder`). Loading checks the manifest, then each file, and
turns anything incomplete or corrupt into one `PlaitError` naming the file and what is
wrong. Folders saved before the manifest existed (format 0) load with the same per-file
checks, without checksums.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import load_model, save_model
from torch import nn

from plait.config import PlaitConfig
from plait.data import LabelSpace, restore_processor
from plait.data.processor import STATE_FILE
from plait.encoders import HFEncoder
from plait.errors import PlaitError
from plait.utils.io import (
    atomic_write_folder,
    atomic_write_json,
    atomic_write_text,
    previous_folder,
    staging_folder,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "plait-model"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
UNCHECKED = {MANIFEST, "README.md"}  # the model card may be edited by its owner


class ModelFolderError(PlaitError):
    """A saved model folder is missing, incomplete, corrupt or not Plait's."""


# ------------------------------------------------------------------------------ saving
def save_folder(
    folder: str | Path,
    *,
    model: nn.Module,
    config: PlaitConfig,
    processors: dict[str, Any],
    labels: LabelSpace | None,
    metrics: dict[str, Any],
    card: str,
    task: str | None = None,
    extra: Callable[[Path], object] | None = None,
) -> Path:
    """Write the folder atomically; `model.encoders` (a ModuleDict) provides the hub
    towers' configs, `task` (the row of `plait.tasks.TASKS`) is recorded in the manifest,
    and `extra(staging)` adds a predictor's own files before the manifest seals the
    folder."""
    folder = Path(folder)
    _refuse_to_replace_other_folders(folder)

    def write(staging: Path) -> None:
        config.to_yaml(staging / "config.yaml")
        save_model(model, str(staging / WEIGHTS))
        if labels is not None:
            atomic_write_json(staging / "labels.json", labels.to_dict())
        encoders = getattr(model, "encoders", {})
        for name, processor in processors.items():
            processor.save(staging / "processors" / name)
            encoder = encoders[name] if name in encoders else None
            if isinstance(encoder, HFEncoder):
                encoder.save_hub_files(staging / "hub" / name)
        if metrics:
            atomic_write_json(staging / "metrics.json", metrics)
        atomic_write_text(staging / "README.md", card)
        if extra is not None:
            extra(staging)
        token = _SAVING_TASK.set(task)
        try:
            write_manifest(staging)
        finally:
            _SAVING_TASK.reset(token)

    return atomic_write_folder(folder, write)


#: the task of the folder `save_folder` is sealing (one save per context, thread-safe)
_SAVING_TASK: ContextVar[str | None] = ContextVar("plait_saving_task", default=None)


def write_manifest(folder: Path) -> None:
    """Seal a finished folder: its task (the save's, when known), and the size and sha256
    of every file (README.md excepted)."""
    task = _SAVING_TASK.get()
    files = {
        relative: {"size": (folder / relative).stat().st_size, "sha256": _sha256(folder / relative)}
        for relative in _listed_files(folder)
    }
    manifest: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION}
    if task is not None:
        manifest["task"] = task
    atomic_write_json(folder / MANIFEST, {**manifest, "files": files})


def read_task(folder: str | Path) -> str | None:
    """The task recorded in the folder's manifest; None for a folder saved before tasks
    were recorded (then its config says which it is)."""
    path = _existing_folder(Path(folder)) / MANIFEST
    if not path.is_file():
        return None
    with _reading(Path(folder), MANIFEST):
        task = json.loads(path.read_text()).get("task")
    return str(task) if task is not None else None


def _listed_files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in UNCHECKED
    )


def _refuse_to_replace_other_folders(folder: Path) -> None:
    """Saving replaces the whole folder, so never point it at a folder of something else."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ModelFolderError(f"cannot save the model to {folder}: it is a file")
    if any(folder.iterdir()) and not any(
        (folder / name).exists() for name in (MANIFEST, WEIGHTS, "config.yaml")
    ):
        raise ModelFolderError(
            f"cannot save the model to {folder}: the folder holds other files and saving "
            "replaces the whole folder; choose a new or empty folder"
        )


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


# ----------------------------------------------------------------------------- loading
@dataclass
class FolderContents:
    """What a saved folder holds besides the weights (read before the model is built)."""

    config: PlaitConfig
    processors: dict[str, Any]
    labels: LabelSpace | None
    metrics: dict[str, Any]


def raw_config(folder: str | Path) -> dict[str, Any]:
    """The saved config as plain YAML data, after the cheap checks (folder, config.yaml):
    enough to tell which kind of model the folder holds."""
    folder = _existing_folder(Path(folder))
    path = folder / "config.yaml"
    if not path.is_file():
        raise ModelFolderError(f"{folder} is not a saved Plait model: config.yaml is missing")
    with _reading(folder, "config.yaml"):
        raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ModelFolderError(f"{path} is corrupt: it does not hold a config mapping")
    return raw


def read_config(folder: str | Path) -> PlaitConfig:
    """Check the whole folder (manifest checksums, the weights file's format), then the
    saved config, with pretrained towers pointed at the copies saved in `hub/`."""
    folder = Path(folder)
    check_folder(folder)
    path = folder / "config.yaml"
    raw = raw_config(folder)
    with _reading(folder, "config.yaml"):
        config = PlaitConfig.from_dict(raw, source=str(path))  # migrates old versions
    return point_hub_encoders_at(config, folder)


def read_folder(folder: str | Path, config: PlaitConfig) -> FolderContents:
    """Processors, labels and metrics of a saved folder, for `config` (from read_config)."""
    folder = Path(folder)
    labels = None
    if (folder / "labels.json").is_file():
        with _reading(folder, "labels.json"):
            labels = LabelSpace.from_dict(json.loads((folder / "labels.json").read_text()))
    if not (folder / "processors").is_dir():
        raise ModelFolderError(
            f"{folder} is incomplete: processors/ is missing (it holds the tokenizer and "
            "feature settings the model was trained with)"
        )
    processors = {}
    for name, modality in config.modalities.items():
        relative = f"processors/{name}/{STATE_FILE}"
        if not (folder / relative).is_file():
            raise ModelFolderError(
                f"{folder} is incomplete: {relative} is missing (the `{name}` processor)"
            )
        with _reading(folder, f"processors/{name}/"):
            processors[name] = restore_processor(modality, folder / "processors" / name)
    metrics: dict[str, Any] = {}
    if (folder / "metrics.json").is_file():
        with _reading(folder, "metrics.json"):
            metrics = json.loads((folder / "metrics.json").read_text())
    return FolderContents(config, processors, labels, metrics)


def load_weights_into(model: nn.Module, folder: str | Path, device: str) -> nn.Module:
    """Load `model.safetensors` into `model`; weights that do not fit it are named."""
    path = Path(folder) / WEIGHTS
    try:
        missing, unexpected = load_model(model, str(path), strict=False, device=device)
    except RuntimeError as exc:
        raise ModelFolderError(
            f"{path} does not fit the model config.yaml describes: {_size_mismatches(exc)}"
        ) from None
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing ({_some(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_some(unexpected)})")
        raise ModelFolderError(
            f"{path} does not fit the model config.yaml describes: {'; '.join(parts)}"
        )
    return model.to(device)


def point_hub_encoders_at(config: PlaitConfig, folder: Path) -> PlaitConfig:
    """Rebuild pretrained towers from the copy of their config saved with the model."""
    modalities = {}
    for name, modality in config.modalities.items():
        local = folder / "hub" / name
        if modality.encoder.type == "huggingface" and local.is_dir():
            encoder = modality.encoder.model_copy(update={"model": str(local)})
            modality = modality.model_copy(update={"encoder": encoder})
        modalities[name] = modality
    return config.model_copy(update={"modalities": modalities})


# ---------------------------------------------------------------------------- checking
def check_folder(folder: str | Path) -> None:
    """Raise one `ModelFolderError` when `folder` is not a complete, intact model folder:
    missing or half-saved, a checksum that no longer matches its manifest, or weights that
    are not a whole safetensors file. Reads every byte once when there is a manifest."""
    folder = _existing_folder(Path(folder))
    if (folder / MANIFEST).is_file():
        _check_manifest(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise ModelFolderError(f"{folder} is not a saved Plait model: {WEIGHTS} is missing")
    problem = safetensors_problem(weights)
    if problem:
        raise ModelFolderError(f"{weights} {problem}")


def _existing_folder(folder: Path) -> Path:
    """`folder` when it is a folder; otherwise say what happened to it (an interrupted save
    leaves a staging folder beside it)."""
    if folder.name.startswith(".") and folder.name.endswith(".staging"):
        target = folder.parent / folder.name[1 : -len(".staging")]
        intact = f"; the previous model at {target} is intact" if target.is_dir() else ""
        raise ModelFolderError(
            f"{folder} is a staging folder left by an interrupted save, not a model{intact}"
        )
    if folder.is_dir():
        staging = staging_folder(folder)
        if staging.is_dir():
            log.warning(
                "%s: an interrupted save left %s beside it; this folder is the last "
                "complete save (the next save removes the staging folder)",
                folder,
                staging.name,
            )
        return folder
    if folder.exists():
        raise ModelFolderError(f"{folder} is a file, not a saved model folder")
    previous, staging = previous_folder(folder), staging_folder(folder)
    if previous.is_dir():
        raise ModelFolderError(
            f"{folder} is missing: a save was interrupted while swapping folders; the previous "
            f"model is intact in {previous} (rename it to {folder.name}, or save again)"
        )
    if staging.is_dir():
        raise ModelFolderError(
            f"{folder} does not exist: the save that was writing it was interrupted (its "
            f"staging folder {staging} is incomplete) and no earlier model was there; "
            "train or save again"
        )
    raise ModelFolderError(f"{folder}: model folder not found")


def _check_manifest(folder: Path) -> None:
    path = folder / MANIFEST
    with _reading(folder, MANIFEST):
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        version = int(manifest["version"])
    if manifest.get("format") != FORMAT or not isinstance(files, dict):
        raise ModelFolderError(f"{path} is not a Plait model manifest")
    if version > FORMAT_VERSION:
        raise ModelFolderError(
            f"{folder} was saved in model format {version} by a newer Plait (this one reads "
            f"up to {FORMAT_VERSION}); upgrade Plait to load it"
        )
    problems = []
    for relative, entry in files.items():
        file = folder / relative
        if not file.is_file():
            problems.append(f"{relative} is missing")
        elif file.stat().st_size != entry["size"]:
            size = file.stat().st_size
            problems.append(
                f"{relative} changed since it was saved ({size} bytes, not {entry['size']})"
            )
        elif _sha256(file) != entry["sha256"]:
            problems.append(f"{relative} changed since it was saved (checksum mismatch)")
    if problems:
        raise ModelFolderError(f"{folder} is corrupt: {'; '.join(problems)} (per {MANIFEST})")


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with `path` as a safetensors file, read from its header alone (never
    unpickled), or None when it is complete."""
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes): the save that wrote it did not finish"
    with open(path, "rb") as handle:
        start = handle.read(9)  # the header size (u64), then the header's "{"
        if start.startswith(b"PK\x03\x04"):
            return (
                "is a zip archive (a torch.save checkpoint), not safetensors; Plait never "
                "unpickles files: save the weights with safetensors (Predictor.save)"
            )
        # a pickle starts with \x80; so does a safetensors header whose size ends in 0x80
        if start.startswith(b"\x80") and start[8:9] != b"{":
            return (
                "is a Python pickle, not safetensors; Plait never unpickles files: save the "
                "weights with safetensors (Predictor.save)"
            )
        if len(start) < 8:
            return f"is truncated ({size} bytes, shorter than a safetensors header)"
        header_size = int.from_bytes(start[:8], "little")
        handle.seek(8)
        if header_size > size - 8:
            if header_size > 100_000_000:
                return "is not a safetensors file (its header is unreadable)"
            return f"is truncated ({size} bytes; its header alone needs {header_size + 8})"
        try:
            header = json.loads(handle.read(header_size))
            ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return "is not a safetensors file (its header is not valid safetensors JSON)"
    expected = 8 + header_size + max(ends, default=0)
    if size < expected:
        return f"is truncated ({size} bytes of {expected})"
    if size > expected:
        return f"is corrupt ({size - expected} bytes after the last tensor)"
    return None


@contextmanager
def _reading(folder: Path, relative: str) -> Iterator[None]:
    """Turn any failure to read `relative` into one error naming the file."""
    try:
        yield
    except ModelFolderError:
        raise
    except PlaitError as exc:
        text = _one_line(exc)  # a config error names its file already
        raise ModelFolderError(
            text if relative in text else f"{folder / relative}: {text}"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
        what = _one_line(exc)
        raise ModelFolderError(f"{folder / relative} is corrupt or unreadable: {what}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError):
        text = f"missing key {text}"
    return text[:500]


def _size_mismatches(exc: RuntimeError) -> str:
    size = r"torch\.Size\(\[[^\]]*\]\)"
    found = re.findall(
        rf"size mismatch for ([^:]+): copying a param with shape ({size}) from checkpoint, "
        rf"the shape in current model is ({size})",
        str(exc),
    )
    if not found:
        return _one_line(exc)
    shown = "; ".join(
        f"{name} is {_shape(saved)} in the file, {_shape(wanted)} in the model"
        for name, saved, wanted in found[:3]
    )
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    return f"{len(found)} tensors have another shape: {shown}{more}"


def _shape(text: str) -> str:
    return text.removeprefix("torch.Size(").removesuffix(")")


def _some(names: Iterable[str], count: int = 3) -> str:
    names = sorted(names)
    shown = ", ".join(names[:count])
    return shown + (", ..." if len(names) > count else "")
