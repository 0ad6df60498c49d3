"""The export folder: graphs, what preprocessing needs, and a record of where it came from::

    model.onnx | tower_<modality>.onnx   the graph(s)
    export.json      format version; plait / torch / onnx / onnxruntime versions; per
                     graph its exporter, inputs, output, dynamic axes and parity results;
                     the source model folder's per-file sha256 (its manifest)
    config.yaml, labels.json, processors/, hub/, metrics.json   copied from the model
                     folder, so raw rows are preprocessed exactly as in training
    manifest.json    size and sha256 of every other file, written last

Written like a model folder: built in a staging folder and swapped in whole
(`plait.utils.io.atomic_write_folder`), so a failed export never leaves half a folder.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plait.errors import PlaitError
from plait.utils.io import atomic_write_folder, atomic_write_json

if TYPE_CHECKING:
    from plait.export.api import GraphResult
    from plait.export.parity import Tolerance

EXPORT_JSON = "export.json"
MANIFEST = "manifest.json"
FORMAT = "plait-onnx-export"
FORMAT_VERSION = 1
COPIED = ("config.yaml", "labels.json", "metrics.json", "processors", "hub")


class ExportFolderError(PlaitError):
    """An export folder is missing, incomplete, corrupt or from a newer Plait."""


def write_export_folder(
    out: Path,
    source: Path,
    write_graphs: Callable[[Path], dict[str, Any]],
    graphs: Sequence[GraphResult],
    *,
    tolerance: Tolerance,
    data: dict[str, Any],
) -> Path:
    """Build the folder: copies, graphs (`write_graphs(staging)` fills `graphs` and returns
    extra export.json fields), export.json, then the manifest."""
    _refuse_to_replace_other_folders(out)

    def write(staging: Path) -> None:
        for name in COPIED:
            item = source / name
            if item.is_dir():
                shutil.copytree(item, staging / name)
            elif item.is_file():
                shutil.copy2(item, staging / name)
        extra = write_graphs(staging)
        record = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "task": _source_task(source),
            "versions": versions(),
            "source": {"folder": str(source.resolve()), "files": _source_files(source)},
            "parity": {
                "data": data,
                "tolerance": {"max_abs": tolerance.max_abs, "min_cosine": tolerance.min_cosine},
            },
            "graphs": {
                g.name: {
                    **g.spec.to_dict(),
                    "exporter": g.exporter,
                    "attempts": g.attempts,
                    "parity": [r.to_dict() for r in g.parity],
                }
                for g in graphs
            },
            **extra,
        }
        atomic_write_json(staging / EXPORT_JSON, record)
        seal(staging)

    return atomic_write_folder(out, write)


def seal(folder: Path) -> None:
    """Write the manifest (size and sha256 of every other file) as the last step of
    building an export folder; a tool that adds a graph (quantization) reseals."""
    files = {
        rel: {"size": (folder / rel).stat().st_size, "sha256": sha256(folder / rel)}
        for rel in _listed(folder)
    }
    atomic_write_json(
        folder / MANIFEST, {"format": FORMAT, "version": FORMAT_VERSION, "files": files}
    )


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("plait", "torch", "onnx", "onnxruntime", "onnxscript", "transformers"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _listed(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST
    )


def _source_files(source: Path) -> dict[str, str]:
    """The model folder's per-file sha256: from its manifest when it has one."""
    manifest = source / MANIFEST
    if manifest.is_file():
        files = json.loads(manifest.read_text()).get("files", {})
        return {rel: entry["sha256"] for rel, entry in files.items()}
    return {rel: sha256(source / rel) for rel in _listed(source)}


def _source_task(source: Path) -> str | None:
    manifest = source / MANIFEST
    if manifest.is_file():
        task = json.loads(manifest.read_text()).get("task")
        return str(task) if task else None
    return None


def _refuse_to_replace_other_folders(folder: Path) -> None:
    """An export replaces its whole folder: never one that is not an export folder."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ExportFolderError(f"cannot export to {folder}: it is a file")
    if any(folder.iterdir()) and not (folder / EXPORT_JSON).is_file():
        raise ExportFolderError(
            f"cannot export to {folder}: the folder holds other files and an export replaces "
            "the whole folder; choose a new or empty folder"
        )


def is_export_folder(folder: str | Path) -> bool:
    return (Path(folder) / EXPORT_JSON).is_file()


def read_export_json(folder: str | Path) -> dict[str, Any]:
    """export.json, after checking every file against the manifest."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ExportFolderError(f"{folder} is incomplete: {MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
        record = json.loads((folder / EXPORT_JSON).read_text())
        version = int(record["version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportFolderError(
            f"{folder}: export.json or {MANIFEST} is unreadable: {exc}"
        ) from None
    if record.get("format") != FORMAT:
        raise ExportFolderError(f"{folder / EXPORT_JSON} is not a Plait ONNX export record")
    if version > FORMAT_VERSION:
        raise ExportFolderError(
            f"{folder} was exported in format {version} by a newer Plait (this one reads up "
            f"to {FORMAT_VERSION}); upgrade Plait to load it"
        )
    problems = []
    for rel, entry in manifest.get("files", {}).items():
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif path.stat().st_size != entry["size"] or sha256(path) != entry["sha256"]:
            problems.append(f"{rel} changed since it was exported (checksum mismatch)")
    if problems:
        raise ExportFolderError(f"{folder} is corrupt: {'; '.join(problems)} (per {MANIFEST})")
    return record
