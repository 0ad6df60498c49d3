"""The Dataset over one manifest table, its collate into `Batch`, up-front row validation
and an epoch-seeded sampler.

Reproducibility: every random choice for a sample (crop, flip, SpecAugment) comes from a
`torch.Generator` seeded from (seed, epoch, row), and the shuffle order from (seed, epoch).
So results do not depend on the number of workers, and a run resumed at epoch k sees
exactly the samples and order an uninterrupted run would.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from plait.data.batch import Batch
from plait.data.labels import LabelSpace
from plait.data.manifest import ROW_NUMBERING, Table
from plait.data.processor import Processor
from plait.errors import DataError, RowProblem
from plait.utils.progress import progress_bar

log = logging.getLogger(__name__)

Sample = dict[
    str, Any
]  # {"id": str, "inputs": {m: {k: T}}, "presence": {m: bool}, "label": T|None}


def derive_seed(*parts: int) -> int:
    """Mix integers into one well-spread 63-bit seed (same parts -> same seed, anywhere)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFFFFFFFFFFFFFF


class MultimodalDataset(Dataset):
    """Rows of one table -> samples of every modality.

    Args:
        table: the manifest.
        processors: modality name -> processor (each knows its column).
        rows: 0-based table positions this dataset serves (default: all rows).
        labels: encoded targets aligned with `rows` ([N] or [N, L]), or None.
        ids: one id per row (default: the 1-based row number as a string).
        train: apply training-time augmentation.
        seed: base seed of the per-sample generators.

    With `num_workers > 0` call `set_epoch` before each epoch's iterator is created (the
    default, non-persistent workers copy the dataset then).
    """

    def __init__(
        self,
        table: Table,
        processors: dict[str, Processor],
        rows: Sequence[int] | np.ndarray | None = None,
        labels: Tensor | None = None,
        ids: Sequence[str] | None = None,
        train: bool = False,
        seed: int = 0,
    ) -> None:
        self.table = table
        self.processors = processors
        self.rows = np.asarray(range(len(table)) if rows is None else rows, dtype=np.int64)
        if labels is not None and len(labels) != len(self.rows):
            raise ValueError(f"{len(labels)} labels for {len(self.rows)} rows")
        self.labels = labels
        self.ids = [str(Table.row_number(r)) for r in self.rows] if ids is None else list(ids)
        self.train = train
        self.seed = seed
        self.epoch = 0
        # plain lists of cells: fast to index, cheap to copy into workers
        self._cells = {
            name: table.frame[p.column].iloc[self.rows].tolist() for name, p in processors.items()
        }
        self._last_load: dict[str, tuple[str, Any]] = {}  # modality -> (cell, raw load)

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def cells(self, name: str) -> list[Any]:
        """The raw cells of modality `name`, one per sample (e.g. a picture's path)."""
        return list(self._cells[name])

    @property
    def row_numbers(self) -> list[int]:
        """1-based file row number of each sample."""
        return [Table.row_number(r) for r in self.rows]

    def generator(self, index: int) -> torch.Generator:
        row = int(self.rows[index])
        return torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, row))

    def __getitem__(self, index: int) -> Sample:
        generator = self.generator(index)
        inputs: dict[str, dict[str, Tensor]] = {}
        presence: dict[str, bool] = {}
        for name, processor in self.processors.items():
            value = self._cells[name][index]
            if processor.is_missing(value):
                inputs[name], presence[name] = processor.placeholder(), False
                continue
            try:
                raw = self._load(name, processor, value)
                inputs[name] = processor.transform(raw, self.train, generator)
            except ValueError as exc:  # e.g. a file changed after validation
                problem = RowProblem(
                    self.table.name, Table.row_number(self.rows[index]), processor.column, str(exc)
                )
                raise DataError(f"cannot load a sample ({ROW_NUMBERING})", [problem]) from exc
            presence[name] = True
        label = None if self.labels is None else self.labels[index]
        return {"id": self.ids[index], "inputs": inputs, "presence": presence, "label": label}

    def _load(self, name: str, processor: Processor, value: Any) -> Any:
        """The processor's raw load of a cell; a file cell the same as the previous sample's
        is decoded once (rows of one picture come in a row under `vqa.group_questions`). The
        transform, and any randomness of it, still runs for each row; loads do not modify
        what they return."""
        if not isinstance(value, str):
            return processor.load(value, self.table.base_dir)
        last = self._last_load.get(name)
        if last is not None and last[0] == value:
            return last[1]
        raw = processor.load(value, self.table.base_dir)
        self._last_load[name] = (value, raw)
        return raw

    def collate(self, samples: list[Sample]) -> Batch:
        """Use as the DataLoader's `collate_fn`."""
        return collate(samples, self.processors)


def collate(samples: list[Sample], processors: dict[str, Processor]) -> Batch:
    """Samples -> Batch: inputs {modality: {key: [B, ...]}}, presence {modality: [B] bool}."""
    inputs = {
        name: processor.collate([s["inputs"][name] for s in samples])
        for name, processor in processors.items()
    }
    presence = {
        name: torch.tensor([s["presence"][name] for s in samples], dtype=torch.bool)
        for name in processors
    }
    labels = None
    if samples and all(s["label"] is not None for s in samples):
        labels = torch.stack([s["label"] for s in samples])
    return Batch(inputs=inputs, presence=presence, labels=labels, ids=[s["id"] for s in samples])


# ------------------------------------------------------------------------ validation


def validate_rows(
    table: Table,
    config: Any,
    processors: dict[str, Processor],
    labels: LabelSpace | None,
    rows: Sequence[int] | np.ndarray | None = None,
    on_error: str | None = None,
    progress: bool = True,
    description: str | None = None,
    required: Sequence[str] = (),
) -> tuple[np.ndarray, list[RowProblem]]:
    """Check every row before training: files exist and decode, labels are valid.
    Returns (good positions, problems).

    An empty cell of a modality in `required` is a problem (a captioner has nothing to
    caption without its source); other empty cells are a missing modality.

    A row with every modality empty is kept (the model predicts it from what it learned
    with nothing present, as for any missing modality) and counted in a warning.

    `on_error` (default `config.data.on_error`): `raise` -> DataError listing every
    problem; `skip` -> log a warning and return the good rows; `collect` -> just return.
    """
    on_error = on_error or config.data.on_error
    positions = np.asarray(range(len(table)) if rows is None else rows, dtype=np.int64)
    frame = table.frame
    problems: list[RowProblem] = []
    if labels is not None:
        problems += labels.validate(frame.iloc[positions], table.name, positions)

    names = list(processors)
    columns = {name: frame[processors[name].column].tolist() for name in names}

    empty_rows: list[int] = []

    def check(pos: int) -> list[RowProblem]:
        found, present = [], 0
        for name in names:
            processor, value = processors[name], columns[name][pos]
            if processor.is_missing(value):
                if name in required:
                    reason = f"empty cell: this model needs the {name} of every row"
                    found.append(
                        RowProblem(table.name, Table.row_number(pos), processor.column, reason)
                    )
                continue
            present += 1
            try:
                processor.check(value, table.base_dir)
            except ValueError as exc:
                found.append(
                    RowProblem(table.name, Table.row_number(pos), processor.column, str(exc))
                )
        if present == 0 and not found:  # a refused empty row is a problem, not a warning
            empty_rows.append(Table.row_number(pos))
        return found

    # threads overlap file I/O; rows go in chunks (ThreadPoolExecutor.map ignores
    # `chunksize`, and one future per row costs more than checking an array cell)
    chunks = [positions[i : i + 256] for i in range(0, len(positions), 256)]

    def check_chunk(chunk: np.ndarray) -> list[RowProblem]:
        return [problem for pos in chunk for problem in check(int(pos))]

    workers = min(8, os.cpu_count() or 1) if len(chunks) > 1 else 1
    results: list[list[RowProblem]] = []
    description = description or f"checking {table.name}"
    # small tables finish before a bar is worth drawing
    with progress_bar(progress, description, len(positions), min_total=256) as advance:
        with ThreadPoolExecutor(workers) as pool:
            for chunk, found in zip(chunks, pool.map(check_chunk, chunks), strict=True):
                results.append(found)
                advance(len(chunk))
    for found in results:
        problems += found
    if empty_rows:
        fate = (
            "an aligned model skips them"
            if config.alignment is not None
            else "they are kept and predicted from the label prior"
        )
        log.warning(
            "%s: %d row(s) have every modality (%s) empty (first: row %d); %s",
            table.name,
            len(empty_rows),
            ", ".join(config.modalities),
            min(empty_rows),
            fate,
        )

    problems.sort(key=lambda p: (p.row, p.column or ""))
    bad = {p.row for p in problems}
    good = np.array([r for r in positions if Table.row_number(r) not in bad], dtype=np.int64)
    handle_problems(problems, on_error, table.name, len(positions))
    return good, problems


def handle_problems(problems: list[RowProblem], on_error: str, name: str, total: int) -> None:
    """Apply the `on_error` policy to problems found in `name`."""
    if not problems or on_error == "collect":
        return
    rows = len({(p.file, p.row) for p in problems})
    if on_error == "raise":
        raise DataError(
            f"{name}: {len(problems)} problem(s) in {rows} of {total} row(s) ({ROW_NUMBERING}); "
            "fix them or set `data.on_error: skip` to drop those rows",
            problems,
        )
    log.warning(
        "%s: skipping %d of %d row(s) with problems (data.on_error: skip); first: %s",
        name,
        rows,
        total,
        problems[0],
    )


# -------------------------------------------------------------------------- sampler


class EpochSampler(Sampler[int]):
    """Shuffles by a generator seeded from (seed, epoch); optional DDP sharding.

    Like DistributedSampler, with `num_replicas` > 1 the order is padded (by repeating its
    start) to a multiple of `num_replicas`, or cut when `drop_last`, and rank r takes every
    num_replicas-th index from r. Call `set_epoch(epoch)` before each epoch.
    """

    def __init__(
        self,
        data_source: Sequence[Any] | int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        self.size = data_source if isinstance(data_source, int) else len(data_source)
        self.shuffle = shuffle
        self.seed = seed
        if num_replicas is None or rank is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            num_replicas = num_replicas or (dist.get_world_size() if ready else 1)
            rank = rank if rank is not None else (dist.get_rank() if ready else 0)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last
        self.epoch = 0
        if drop_last:
            self.per_replica = self.size // num_replicas
        else:
            self.per_replica = math.ceil(self.size / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.per_replica

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        total = self.per_replica * self.num_replicas
        if total > len(order) and order:
            repeats = math.ceil(total / len(order))
            order = (order * repeats)[:total]
        order = order[:total]
        return iter(order[self.rank : total : self.num_replicas])
