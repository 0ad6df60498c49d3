"""Descriptions as a feature: a text modality whose column a large model writes, by
describing each row's picture, so any fusion can use what the model saw.

Set `describe:` on a text modality (`plait.config.DescribeConfig`). Training
(`plait.api.train_run`) adds the column to each data table before they are prepared,
writing the described tables into the run folder (`described/`, file paths in them made
absolute); a loaded model adds it the same way to every table it reads
(`BasePredictor.prepare`). `plait.data` never imports this module.

The saved model folder records, in `descriptions.json` (listed in its manifest), each
described modality's column, picture column, backend options, the exact prompt text (not
the template name, so a later change of the named templates cannot change what a model
is asked) and the identity of the model that wrote the training descriptions. Loading
the folder needs nothing of the large model; predicting on new rows asks it again
(through the same answer cache, so rows seen in training cost nothing).

A row whose picture is missing or cannot be read gets no description (a missing text
modality for that row, as for any empty cell), never a made-up one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from plait.config import PlaitConfig, TextModality, VlmConfig
from plait.data.manifest import Table, read_table
from plait.data.processor_base import resolve_path
from plait.errors import DataError, PlaitError
from plait.utils.io import atomic_write, atomic_write_json
from plait.vlm.base import VlmBackend

log = logging.getLogger(__name__)

DESCRIPTIONS_FILE = "descriptions.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Description:
    """How one text modality's column is written: which picture column, which model, which
    exact prompt; `identity` is the backend that wrote the training descriptions."""

    column: str
    image: str
    backend: VlmConfig
    prompt: str
    max_new_tokens: int
    identity: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "image": self.image,
            "backend": self.backend.model_dump(mode="json"),
            "prompt": self.prompt,
            "max_new_tokens": self.max_new_tokens,
            "identity": self.identity,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Description:
        return cls(
            column=str(data["column"]),
            image=str(data["image"]),
            backend=VlmConfig(**data["backend"]),
            prompt=str(data["prompt"]),
            max_new_tokens=int(data["max_new_tokens"]),
            identity=data.get("identity"),
        )


def descriptions_of(config: PlaitConfig) -> dict[str, Description]:
    """The described text modalities of `config`, by modality name (prompts resolved:
    an unknown template name is a `ConfigError` naming the closest one)."""
    from plait.vlm.prompts import template_text

    found: dict[str, Description] = {}
    for name, modality in config.modalities.items():
        if isinstance(modality, TextModality) and modality.describe is not None:
            spec = modality.describe
            backend = VlmConfig(**spec.model_dump(include=set(VlmConfig.model_fields)))
            text = template_text(spec.template, prompt=spec.prompt)
            found[name] = Description(
                modality.column, spec.image, backend, text, spec.max_new_tokens
            )
    return found


class Describer:
    """Adds the description columns to tables; each distinct backend is loaded once."""

    def __init__(self, descriptions: dict[str, Description]) -> None:
        self.descriptions = dict(descriptions)
        self._backends: dict[str, VlmBackend] = {}

    def subset(self, names: list[str]) -> Describer:
        """A describer of `names` only, sharing this one's loaded backends."""
        chosen = Describer({n: self.descriptions[n] for n in names})
        chosen._backends = self._backends
        return chosen

    def backend(self, description: Description) -> VlmBackend:
        from plait.vlm.backends import make_backend

        key = description.backend.model_dump_json()
        if key not in self._backends:
            self._backends[key] = make_backend(description.backend)
            now = self._backends[key].identity
            if description.identity and now != description.identity:
                log.warning(
                    "descriptions now come from %s; the model was trained on ones from %s",
                    now,
                    description.identity,
                )
        return self._backends[key]

    def add(self, table: Table, *, progress: bool = True) -> Table:
        """`table` with one more column per described modality (a copy)."""
        from plait.vlm.tables import describe_table

        frame = table.frame.copy()
        for name, description in self.descriptions.items():
            if description.column in frame.columns:
                raise DataError(
                    f"{table.name}: column '{description.column}' is already there, but "
                    f"modality '{name}' writes it from descriptions of '{description.image}'; "
                    "rename or drop that column"
                )
            backend = self.backend(description)
            answers, problems = describe_table(
                backend,
                table,
                description.image,
                description.prompt,
                max_new_tokens=description.max_new_tokens,
                progress=progress,
            )
            if problems:
                log.info(
                    "%s: %d row(s) have no description of '%s' (first: %s)",
                    table.name,
                    len(problems),
                    description.image,
                    problems[0],
                )
            frame[description.column] = pd.Series(answers, dtype=object)
        return Table(frame, table.base_dir, table.name)

    def recorded(self) -> dict[str, Description]:
        """The descriptions with the identity of the backend that wrote them."""
        out = {}
        for name, d in self.descriptions.items():
            identity = self.backend(d).identity
            out[name] = Description(
                d.column, d.image, d.backend, d.prompt, d.max_new_tokens, identity
            )
        return out


def describe_training_tables(
    config: PlaitConfig, run_dir: Path, *, progress: bool = True
) -> tuple[PlaitConfig, Describer | None]:
    """`config` reading described copies of its tables (in `run_dir/described/`), and the
    describer that wrote them; `config` itself and None when nothing is described."""
    descriptions = descriptions_of(config)
    if not descriptions:
        return config, None
    describer = Describer(descriptions)
    folder = Path(run_dir) / "described"
    update: dict[str, str] = {}
    for split in ("train", "valid", "test"):
        source = getattr(config.data, split)
        if not source:
            continue
        table = describer.add(read_table(source), progress=progress)
        _absolute_paths(table, config)
        target = folder / f"{split}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_parquet(target, table.frame)
        update[split] = str(target)
    return config.model_copy(update={"data": config.data.model_copy(update=update)}), describer


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def _absolute_paths(table: Table, config: PlaitConfig) -> None:
    """File cells of picture, sound and array modalities made absolute, so the described
    copy (written elsewhere) reads the same files as the original table."""
    columns = {m.column for m in config.modalities.values() if m.kind != "text"}
    for column in columns & set(map(str, table.frame.columns)):
        table.frame[column] = [
            str(resolve_path(v, table.base_dir)) if isinstance(v, str) and v.strip() else v
            for v in table.frame[column]
        ]


def write_descriptions(folder: Path, descriptions: dict[str, Description]) -> None:
    """`descriptions.json` in a model folder being saved."""
    document = {
        "version": FORMAT_VERSION,
        "modalities": {name: d.to_json() for name, d in descriptions.items()},
    }
    atomic_write_json(Path(folder) / DESCRIPTIONS_FILE, document)


def read_descriptions(folder: Path) -> dict[str, Description] | None:
    """What `write_descriptions` recorded; None for a folder without the file."""
    path = Path(folder) / DESCRIPTIONS_FILE
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
        return {n: Description.from_json(d) for n, d in document["modalities"].items()}
    except (ValueError, KeyError, TypeError) as error:
        raise PlaitError(f"{path}: not a descriptions record Plait can read ({error})") from error
