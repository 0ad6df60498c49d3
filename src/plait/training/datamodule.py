"""Lightning data module over prepared datasets, with epoch-seeded shuffling.

The sampler's order depends only on (seed, epoch), so a resumed run sees the same
batches as an uninterrupted one, and under DDP each process takes its own shard.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from plait.config import TrainingConfig
from plait.data import EpochSampler, MultimodalDataset, PreparedData


class PlaitDataModule(pl.LightningDataModule):
    def __init__(self, data: PreparedData, training: TrainingConfig) -> None:
        super().__init__()
        self.data = data
        self.training = training

    def _loader(self, dataset: MultimodalDataset, shuffle: bool) -> DataLoader:
        replicas, rank = _world()
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


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0
