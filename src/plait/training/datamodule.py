"""Lightning data module over prepared datasets, with epoch-seeded shuffling.

The sampler's order depends only on (seed, epoch), so a resumed run sees the same
batches as an uninterrupted one, and under DDP each process takes its own shard. A VQA
run with `vqa.group_questions: k` > 1 trains on chunks of k questions about one context
(`GroupedEpochSampler`), so the model encodes each picture of a batch once for k rows.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from plait.config import PlaitConfig, TrainingConfig
from plait.data import EpochSampler, MultimodalDataset, PreparedData
from plait.data.grouped_sampler import GroupedEpochSampler


class PlaitDataModule(pl.LightningDataModule):
    """The training and validation loaders of prepared data.

    Args:
        data: the prepared splits.
        training: batch size, seed, workers.
        group_by: a modality whose cell (file) keys the training rows, or None.
        group_size: with `group_by`, training batches come in chunks of this many rows of
            one key (1: plain shuffle).
    """

    def __init__(
        self,
        data: PreparedData,
        training: TrainingConfig,
        group_by: str | None = None,
        group_size: int = 1,
    ) -> None:
        super().__init__()
        self.data = data
        self.training = training
        self.group_by, self.group_size = group_by, group_size

    def _loader(self, dataset: MultimodalDataset, shuffle: bool) -> DataLoader:
        replicas, rank = _world()
        sampler: EpochSampler | GroupedEpochSampler
        if shuffle and self.group_by is not None and self.group_size > 1:
            sampler = GroupedEpochSampler(
                dataset.cells(self.group_by),
                self.group_size,
                seed=self.training.seed,
                num_replicas=replicas,
                rank=rank,
            )
        else:
            sampler = EpochSampler(
                len(dataset),
                shuffle=shuffle,
                seed=self.training.seed,
                num_replicas=replicas,
                rank=rank,
            )
        return DataLoader(
            dataset,
            batch_size=self.training.batch_size,
            sampler=sampler,
            collate_fn=dataset.collate,
            num_workers=self.training.num_workers,
            persistent_workers=False,
            # its own generator for the workers' base seed: creating an iterator then never
            # draws from the global RNG, which dropout uses. (Lightning creates the first
            # iterator of a resumed run before the RNG is restored, so a global draw there
            # would shift every dropout mask after a resume.)
            generator=torch.Generator().manual_seed(self.training.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.data.train, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.data.valid, shuffle=False) if self.data.valid else []


def question_groups(config: PlaitConfig) -> tuple[str | None, int]:
    """(group_by, group_size) of `PlaitDataModule` for a config: the VQA context modality and
    `vqa.group_questions`, or (None, 1) for every other task."""
    if config.vqa is None or config.vqa.group_questions <= 1:
        return None, 1
    return config.vqa_pair[0], config.vqa.group_questions


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0
