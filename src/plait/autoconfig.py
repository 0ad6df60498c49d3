"""A config from a table alone: `plait train TABLE --label COL`, `plait.train(df, label=...)`.

Each column is looked at (through `plait.data.manifest.read_table`, so a table is read
exactly as training will read it) and given one role:

- `image` / `audio`: cells name files whose extension says so AND whose first bytes are
  an image's or a sound file's (a text file named `x.png` is not an image), checked on a
  sample of the files, relative to the table's folder; or array cells (`file.npy#3`):
  uint8 or 3-D rows are images, 1-D rows waveforms, 2-D float rows spectrograms when the
  column name says audio (`audio`, `spec`, `mel`, `sound`, `wav`), images otherwise.
- `text`: strings of several words, or many distinct ones.
- `id`: one column of unique single-token strings (or unique integers named like an id),
  used as `data.id` so predictions can be joined back.
- `label`: the column named by `label`; the task is `classification` for strings and for
  integers with few distinct values (at most `MAX_INTEGER_CLASSES`), `regression` for other
  numbers. Multilabel cells (`a|b`) are not guessed: `--set head.task=multilabel`.
- `ignored`, with the reason: numbers and categories (tabular features are not supported
  yet), constant or empty columns, further id-like columns, unreadable files.

Default choices, and why (every one can be changed with `--set key=value`):
- scratch encoders (`text_cnn`, `image_cnn`, `audio_cnn`): they need no download, train
  in minutes on a CPU and are sound on the small tables a first try uses; a pretrained
  tower is one `--set` away (`modalities.<col>.encoder.type=huggingface` and `.model=`).
- `concat` fusion: no options to tune, no extra parameters, works with one modality or
  several and with missing ones; the README's fusion table says when another pays off.
- image size and audio duration from a sample of the files (never upscaled beyond what
  the files hold: larger inputs cost time and add nothing), capped by the preset.
- presets (`PRESETS`) trade quality for time through epochs, widths, depth, input size.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from plait.config import PlaitConfig, apply_override, parse_duration
from plait.data.arrays import ARRAY_CELL, is_array_cell, load_array_cell
from plait.data.manifest import Table, read_table
from plait.errors import ConfigError, DataError

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq", ".jsonl", ".ndjson")
CONFIG_SUFFIXES = (".yaml", ".yml")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
SAMPLE = 16  # files (or cells) looked at per column
MAX_INTEGER_CLASSES = 20
AUDIO_HINTS = ("audio", "spec", "mel", "sound", "wav")

PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"epochs": 5, "dim": 64, "image_layers": 2, "audio_layers": 1, "image_size": 32,
             "max_length": 32, "duration": 1.0, "early_stopping": 0},
    "medium": {"epochs": 15, "dim": 128, "image_layers": 3, "audio_layers": 2,
               "image_size": 64, "max_length": 64, "duration": 3.0, "early_stopping": 5},
    "best": {"epochs": 40, "dim": 256, "image_layers": 4, "audio_layers": 3,
             "image_size": 128, "max_length": 128, "duration": 5.0, "early_stopping": 8},
}  # fmt: skip
"""Preset -> what it sets. `dim` is every encoder's, the fusion's and the head's width."""


@dataclass
class ColumnRole:
    """What one column is used for, and why (shown to the user as a table)."""

    column: str
    role: str  # image, audio, text, id, label, ignored
    why: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class AutoConfig:
    """The config built from a table, and the roles that led to it."""

    config: PlaitConfig
    roles: list[ColumnRole]
    table: Table


def is_table_path(source: Any) -> bool:
    """True for a path whose extension names a table (.csv, .tsv, .parquet, .jsonl...)."""
    return isinstance(source, str | Path) and Path(source).suffix.lower() in TABLE_SUFFIXES


def auto_config(
    source: str | Path | pd.DataFrame,
    label: str,
    *,
    preset: str = "medium",
    time_limit: str | float | None = None,
    overrides: list[str] | None = None,
    output_dir: str | Path = "runs",
    name: str | None = None,
    fresh: bool = True,
) -> AutoConfig:
    """Infer each column's role in `source` and build a config that trains on it.

    A DataFrame is written to `<output_dir>/<name>/train.parquet` (file paths made
    absolute), so the saved config reloads without it. The run is named
    `<table>-<label>`; with `fresh`, `-2`, `-3`... is added when that run exists.

    Raises:
        ConfigError: an unknown preset, a bad time limit or override, no usable column.
        DataError: the table cannot be read, or `label` is not one of its columns.
    """
    if preset not in PRESETS:
        close = difflib.get_close_matches(preset, list(PRESETS), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise ConfigError(f"unknown preset `{preset}`: choose one of {', '.join(PRESETS)}{hint}")
    table = read_table(source)
    if label not in table.frame.columns:
        columns = [str(c) for c in table.frame.columns]
        close = difflib.get_close_matches(label, columns, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DataError(
            f"{table.name}: label column '{label}' not found{hint}\n"
            f"  columns in this file: {', '.join(columns)}"
        )
    roles = infer_roles(table, label, PRESETS[preset])
    used = [r for r in roles if r.role in ("image", "audio", "text")]
    if not used:
        listed = "; ".join(f"{r.column}: {r.why}" for r in roles if r.role == "ignored")
        raise ConfigError(
            f"{table.name}: no column Plait can learn from (images, audio or text); {listed}"
        )
    # the run folder holds a DataFrame's copy: `--set output_dir=` / `name=` place it too
    top = {key: value for key, value in (_top_override(o) for o in overrides or []) if key}
    out = Path(str(top.get("output_dir", output_dir))).expanduser().resolve()
    run_name = str(top.get("name") or name or _fresh_name(out, _run_name(table, label), fresh))
    train_path = _train_path(source, table, roles, out / run_name)
    raw = _raw_config(roles, train_path, run_name, out, PRESETS[preset])
    if time_limit is not None:
        raw["training"]["time_limit"] = time_limit
    for item in overrides or []:
        apply_override(raw, item)
    config = PlaitConfig.from_dict(raw, source=f"the config inferred from {table.name}")
    return AutoConfig(config.resolve_paths(Path.cwd()), roles, table)


def infer_roles(table: Table, label: str, preset: dict[str, Any]) -> list[ColumnRole]:
    """One `ColumnRole` per column of `table`, in the table's order."""
    roles = []
    have_id = False
    for column in table.frame.columns:
        series = table.frame[column]
        if column == label:
            roles.append(_label_role(str(column), series))
            continue
        role = _column_role(str(column), series, table.base_dir, preset)
        if role.role == "id":
            if have_id:
                role = ColumnRole(role.column, "ignored", "id-like column (another one is the id)")
            have_id = True
        roles.append(role)
    return roles


# ------------------------------------------------------------------------------ columns


def _label_role(column: str, series: pd.Series) -> ColumnRole:
    values = series.dropna()
    numbers = _as_numbers(values)
    if numbers is None or len(values) == 0:
        return ColumnRole(
            column,
            "label",
            f"classification: {values.nunique()} classes",
            {"task": "classification"},
        )
    distinct = numbers.nunique()
    integers = bool(np.all(np.mod(numbers.to_numpy(dtype=float), 1) == 0))
    if integers and distinct <= MAX_INTEGER_CLASSES:
        why = f"classification: {distinct} distinct whole numbers (at most {MAX_INTEGER_CLASSES})"
        return ColumnRole(column, "label", why, {"task": "classification"})
    why = f"regression: {distinct} distinct numbers"
    return ColumnRole(column, "label", why, {"task": "regression"})


def _column_role(column: str, series: pd.Series, base: Path, preset: dict[str, Any]) -> ColumnRole:
    values = series.dropna()
    values = values[[not (isinstance(v, str) and not v.strip()) for v in values]]
    if len(values) == 0:
        return ColumnRole(column, "ignored", "empty column")
    if any(isinstance(v, np.ndarray | list | tuple) for v in values.head(SAMPLE)):
        return ColumnRole(
            column, "ignored", "in-memory arrays: save them as .npy array cells (file.npy#row)"
        )
    distinct = values.astype(str).nunique()
    if distinct == 1:
        return ColumnRole(column, "ignored", "constant column")
    numbers = _as_numbers(values)
    unique = distinct == len(series)
    if numbers is not None:
        id_name = column.lower() == "id" or column.lower().endswith(("_id", "-id"))
        if id_name and unique:
            return ColumnRole(column, "id", "unique values in a column named like an id")
        return ColumnRole(
            column, "ignored", "numeric column: tabular features are not supported yet"
        )
    texts = values.astype(str)
    sample = _sample(texts)
    if all(ARRAY_CELL.match(v) for v in sample):
        return _array_role(column, sample, base)
    suffixes = [Path(v.strip()).suffix.lower() for v in sample]
    for kind, known in (("image", IMAGE_SUFFIXES), ("audio", AUDIO_SUFFIXES)):
        if sum(s in known for s in suffixes) >= 0.8 * len(sample):
            return _file_role(column, kind, sample, base, preset)
    words = texts.str.split().str.len()
    if unique and words.max() == 1 and texts.str.len().max() <= 64:
        return ColumnRole(column, "id", "unique single-token strings")
    if words.mean() >= 2 or distinct > MAX_INTEGER_CLASSES:
        length = int(np.percentile(words, 95) * 1.5) + 2
        max_length = int(min(preset["max_length"], max(8, length)))
        why = f"free text: {words.mean():.1f} words on average, {distinct} distinct values"
        return ColumnRole(column, "text", why, {"max_length": max_length})
    return ColumnRole(
        column,
        "ignored",
        f"categorical column ({distinct} values): tabular features are not supported yet",
    )


def _file_role(
    column: str, kind: str, sample: list[str], base: Path, preset: dict[str, Any]
) -> ColumnRole:
    """`kind` when most sampled files that exist start with `kind`'s header bytes."""
    paths = [_resolve(v, base) for v in sample]
    found = [p for p in paths if p.is_file()]
    if not found:
        return ColumnRole(
            column, "ignored", f"{kind} file names, but none of the sampled files exists "
            f"(paths are relative to {base}), e.g. {paths[0]}"
        )  # fmt: skip
    heads = {p: _header(p) for p in found}
    matching = [p for p, head in heads.items() if _header_kind(head) == kind]
    if len(matching) * 2 <= len(found):
        wrong = next(p for p in found if p not in matching)
        return ColumnRole(
            column, "ignored", f"{kind} file names, but the files' header bytes are not "
            f"{kind} (e.g. {wrong})"
        )  # fmt: skip
    why = f"{kind} files: {len(matching)} of {len(found)} sampled files have {kind} headers"
    settings = (
        _image_settings(matching, preset) if kind == "image" else _audio_settings(matching, preset)
    )
    return ColumnRole(column, kind, why, settings)


def _image_settings(paths: list[Path], preset: dict[str, Any]) -> dict[str, Any]:
    from PIL import Image

    sides, modes = [], set()
    for path in paths:
        try:
            with Image.open(path) as image:  # reads the header only
                sides.append(min(image.size))
                modes.add(image.mode)
        except Exception:  # noqa: BLE001 - a bad file is a bad row later, not a guess now
            continue
    size = int(min(preset["image_size"], np.median(sides))) if sides else preset["image_size"]
    gray = bool(modes) and modes <= {"L", "1", "I", "I;16", "F", "LA"}
    return {"size": max(8, size), "channels": 1 if gray else 3}


def _audio_settings(paths: list[Path], preset: dict[str, Any]) -> dict[str, Any]:
    import soundfile

    lengths = []
    for path in paths:
        try:
            lengths.append(soundfile.info(str(path)).duration)
        except Exception:  # noqa: BLE001 - a bad file is a bad row later, not a guess now
            continue
    duration = float(min(preset["duration"], np.median(lengths))) if lengths else preset["duration"]
    return {"duration": round(max(0.1, duration), 2)}


def _array_role(column: str, sample: list[str], base: Path) -> ColumnRole:
    try:
        row = load_array_cell(sample[0], base)
    except ValueError as exc:
        return ColumnRole(column, "ignored", f"array cells that cannot be read: {exc}")
    shape = tuple(row.shape)
    audio_name = any(hint in column.lower() for hint in AUDIO_HINTS)
    if row.ndim == 1:
        if row.size >= 1000:
            return ColumnRole(
                column, "audio", f"array cells: 1-D rows of {row.size} samples (waveforms)"
            )
        return ColumnRole(
            column,
            "ignored",
            f"array cells of {row.size} numbers: feature vectors are not supported yet",
        )
    if row.ndim == 2 and row.dtype != np.uint8 and audio_name:
        why = f"array cells: 2-D float rows {shape} in a column named like audio (spectrograms)"
        return ColumnRole(column, "audio", why, {"n_mels": shape[0], "spectrogram": True})
    if row.ndim in (2, 3):
        channels = 1 if row.ndim == 2 or shape[-1] == 1 else 3
        why = f"array cells: {row.dtype} rows of shape {shape} (images)"
        return ColumnRole(
            column, "image", why, {"size": max(8, min(shape[:2])), "channels": channels}
        )
    return ColumnRole(column, "ignored", f"array cells of shape {shape}: not an image or audio")


# ------------------------------------------------------------------------------ helpers


def _as_numbers(values: pd.Series) -> pd.Series | None:
    """The values as numbers when every one is a number (CSV cells are read as text)."""
    if values.map(lambda v: isinstance(v, bool | np.bool_)).any():
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any() or not np.isfinite(numbers.to_numpy(dtype=float)).all():
        return None
    return numbers


def _sample(values: pd.Series) -> list[str]:
    """Up to `SAMPLE` values spread evenly over the column (deterministic)."""
    positions = np.unique(np.linspace(0, len(values) - 1, min(SAMPLE, len(values))).astype(int))
    return [str(values.iloc[int(i)]) for i in positions]


def _resolve(value: str, base: Path) -> Path:
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else base / path


def _header(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(16)
    except OSError:
        return b""


def _header_kind(head: bytes) -> str | None:
    """`image`, `audio` or None from a file's first 16 bytes (its format's magic number)."""
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")):
        return "image"
    if head.startswith((b"II*\x00", b"MM\x00*")) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio"
    if head.startswith((b"fLaC", b"OggS", b"ID3")) or (
        head[:4] == b"FORM" and head[8:11] == b"AIF"
    ):
        return "audio"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MPEG audio frame
        return "audio"
    return None


def _run_name(table: Table, label: str) -> str:
    stem = Path(table.name).stem if table.name != "<DataFrame>" else "dataframe"
    return re.sub(r"[^\w.-]+", "_", f"{stem}-{label}")


def _top_override(item: str) -> tuple[str | None, Any]:
    """(`output_dir` or `name`, its value) from an override of one of them, else (None, None)."""
    raw: dict[str, Any] = {}
    key = item.split("=", 1)[0].strip()
    if key not in ("output_dir", "name"):
        return None, None
    apply_override(raw, item)
    return key, raw[key]


def _fresh_name(output_dir: Path, name: str, fresh: bool) -> str:
    """`name`, or `name-2`, `name-3`... when `fresh` and a run by that name exists."""
    candidate, number = name, 1
    while fresh and (output_dir / candidate / "config.yaml").exists():
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def _modality_name(column: str) -> str:
    """A modality name usable in `--set modalities.<name>.x=y` (no dots or spaces)."""
    return re.sub(r"\W+", "_", column).strip("_") or "column"


def _train_path(
    source: str | Path | pd.DataFrame, table: Table, roles: list[ColumnRole], run_dir: Path
) -> str:
    """The table's path; a DataFrame is saved (file paths made absolute) in the run folder."""
    if not isinstance(source, pd.DataFrame):
        return str(Path(table.name).expanduser().resolve())
    frame = table.frame.copy()
    for role in roles:
        if role.role in ("image", "audio"):
            frame[role.column] = [
                _absolute_cell(v, table.base_dir) if isinstance(v, str) else v
                for v in frame[role.column]
            ]
    path = run_dir / "train.parquet"
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        from plait.utils.io import atomic_write

        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    except (ValueError, TypeError, ImportError) as exc:
        raise DataError(f"cannot save the DataFrame as {path} for the run: {exc}") from None
    return str(path)


def _absolute_cell(value: str, base: Path) -> str:
    if is_array_cell(value):
        match = ARRAY_CELL.match(value)
        assert match is not None
        return f"{_resolve(match['path'], base)}#{match['row']}"
    return str(_resolve(value, base))


def _raw_config(
    roles: list[ColumnRole], train: str, name: str, output_dir: Path, preset: dict[str, Any]
) -> dict[str, Any]:
    dim = preset["dim"]
    label = next(r for r in roles if r.role == "label")
    task = label.settings["task"]
    modalities: dict[str, Any] = {}
    for role in roles:
        settings = dict(role.settings)
        if role.role == "text":
            encoder = {"type": "text_cnn", "dim": dim}
            modalities[_modality_name(role.column)] = {
                "kind": "text", "column": role.column, "encoder": encoder, **settings
            }  # fmt: skip
        elif role.role == "image":
            encoder = {"type": "image_cnn", "dim": dim, "layers": preset["image_layers"]}
            modalities[_modality_name(role.column)] = {
                "kind": "image", "column": role.column, "encoder": encoder, **settings
            }  # fmt: skip
        elif role.role == "audio":
            encoder = {"type": "audio_cnn", "dim": dim, "layers": preset["audio_layers"]}
            entry = {"kind": "audio", "column": role.column, "encoder": encoder}
            if settings.pop("spectrogram", False):
                entry["n_mels"] = settings.pop("n_mels")
            else:
                entry["duration"] = settings.get("duration", preset["duration"])
            modalities[_modality_name(role.column)] = entry
    data: dict[str, Any] = {"train": train, "label": label.column}
    data["split"] = {"method": "stratified" if task == "classification" else "random"}
    id_role = next((r for r in roles if r.role == "id"), None)
    if id_role is not None:
        data["id"] = id_role.column
    training: dict[str, Any] = {"epochs": preset["epochs"]}
    if preset["early_stopping"]:
        training["early_stopping"] = preset["early_stopping"]
    return copy.deepcopy(
        {
            "name": name,
            "output_dir": str(output_dir),
            "data": data,
            "modalities": modalities,
            "fusion": {"method": "concat", "dim": dim},
            "head": {"task": task, "hidden": dim},
            "training": training,
        }
    )


def roles_table(roles: list[ColumnRole]) -> Any:
    """A Rich table of the roles: column, role, why."""
    from rich.table import Table as RichTable

    table = RichTable(title="Columns", show_lines=False)
    for heading in ("column", "role", "why"):
        table.add_column(heading, overflow="fold")
    styles = {"ignored": "dim", "label": "bold"}
    for role in roles:
        table.add_row(role.column, role.role, role.why, style=styles.get(role.role))
    return table


__all__ = [
    "PRESETS",
    "AutoConfig",
    "ColumnRole",
    "auto_config",
    "infer_roles",
    "is_table_path",
    "parse_duration",
    "roles_table",
]
