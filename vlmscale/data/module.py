"""Training data for Lightning: an endless step-indexed sampler and the DataModule that serves its loaders.

The datasets themselves come from :func:`vlmscale.data.build_datasets`; this module only decides which index
each optimiser step sees (so a resumed run sees the batches an uninterrupted one would) and batches them.
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class StepIndexedSampler(Sampler[int]):
    """An endless, seeded shuffle whose i-th index depends only on (seed, i), dealt round-robin to ranks.

    Training is counted in optimiser steps, so a run resumed at global step s starts the stream at
    s * batch_size * accumulation * world_size and sees exactly the batches an uninterrupted run would have
    seen, with no loader state to save (and no off-by-one from Lightning's one-batch prefetch). Rank r of w
    takes positions start + r, start + r + w, ...: together the ranks consume the single-process stream."""

    def __init__(
        self, num_samples: int, seed: int = 0, start: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if num_samples <= 0:
            raise ValueError("the training split is empty; check the data config (data.*) and its paths")
        self.num_samples, self.seed, self.start = num_samples, seed, start
        self.rank, self.world_size = rank, world_size

    def _permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_samples, generator=g).tolist()

    def __iter__(self):
        position = self.start + self.rank
        epoch, perm = -1, []
        while True:
            if position // self.num_samples != epoch:
                epoch = position // self.num_samples
                perm = self._permutation(epoch)
            yield perm[position % self.num_samples]
            position += self.world_size


class VLMDataModule(L.LightningDataModule):
    """Loaders over already-built datasets (see `vlmscale.data.build_datasets`)."""

    def __init__(
        self,
        datasets: Mapping[str, Dataset],
        collate_fn,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.datasets = dict(datasets)
        self.collate_fn = collate_fn
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed

    def _loader(self, split: str, batch_size: int, sampler: Sampler | None = None) -> DataLoader:
        if split not in self.datasets:
            raise KeyError(f"no {split!r} split; the data config provides {sorted(self.datasets)}")
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        # Called after a checkpoint's loop state is restored, so global_step is where training resumes.
        # The sampler shards across ranks itself (Trainer(use_distributed_sampler=False), see conf/trainer).
        trainer = self.trainer
        consumed, rank, world = 0, 0, 1
        if trainer is not None:
            rank, world = trainer.global_rank, trainer.world_size
            consumed = trainer.global_step * trainer.accumulate_grad_batches * self.batch_size * world
        sampler = StepIndexedSampler(
            len(self.datasets["train"]), seed=self.seed, start=consumed, rank=rank, world_size=world
        )
        return self._loader("train", self.batch_size, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)
