"""Training data for Lightning: the step-indexed samplers and the DataModule that serves their loaders.

The datasets themselves come from :func:`vlmscale.data.build_datasets`; this module only decides which index
each optimiser step sees (so a resumed run sees the batches an uninterrupted one would), batches them, and
sizes the loader (workers, pinned memory) for the machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

# Keys of a data config (conf/data/) that say how its training split is batched, not how it is built: the
# build wiring takes them out before `build_datasets(**cfg.data)`.
SAMPLER_KEYS = frozenset({"group_by_length"})


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


class GroupedBatchSampler(Sampler[list[int]]):
    """Endless micro-batches of similar length, image and text-only records kept apart (LLaVA's
    ``group_by_modality_length`` idea), whose k-th optimiser step is a pure function of (seed, k).

    Every step takes one global batch of G = micro_batch x accumulation x world_size records. Epoch e is laid
    out from (seed, e) alone: each modality's records are shuffled and cut into megabatches of ``megabatch``
    global batches; a megabatch is sorted by length and cut into global batches; the pieces left over at the
    end of both modalities are pooled the same way (the last < G records of the epoch are dropped); then the
    epoch's global batches are shuffled. So padding stays small (a micro-batch holds records of nearly equal
    length) while the order of lengths through training stays random.

    A global batch, in length order, is cut into accumulation x world_size micro-batches; micro-batch m goes
    to accumulation step m // world_size on rank m % world_size: the ranks take disjoint slices that together
    cover the global batch, and at each accumulation step they hold neighbouring lengths (no rank waits long
    for a longer one). Which records a step trains on depends only on G, so a resumed run (``start_step``)
    sees exactly the steps an uninterrupted one would, also on another number of GPUs with the same G.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        has_image: Sequence[bool],
        micro_batch: int,
        accumulation: int = 1,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        start_step: int = 0,
        megabatch: int = 32,
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.has_image = np.asarray(has_image, dtype=bool)
        if len(self.lengths) != len(self.has_image):
            raise ValueError("lengths and has_image must describe the same records")
        self.micro_batch, self.accumulation, self.world_size = micro_batch, accumulation, world_size
        self.rank, self.seed, self.start_step, self.megabatch = rank, seed, start_step, megabatch
        self.global_batch = micro_batch * accumulation * world_size
        self.steps_per_epoch = len(self.lengths) // self.global_batch
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the training split has {len(self.lengths)} records, fewer than one global batch "
                f"({micro_batch} x {accumulation} accumulation x {world_size} GPUs = {self.global_batch}); "
                "lower loader.batch_size or trainer.accumulate_grad_batches"
            )
        self._epoch, self._batches = -1, np.empty((0, self.global_batch), dtype=np.int64)

    def _generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)

    def _sorted_batches(self, indices: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Global batches cut from ``indices`` one megabatch at a time (sorted by length, longest first
        within a megabatch), and the records left over (fewer than one global batch)."""
        size = self.global_batch
        batches = []
        span = size * self.megabatch
        for start in range(0, len(indices), span):
            chunk = indices[start : start + span]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            whole = len(chunk) // size * size
            batches += list(chunk[:whole].reshape(-1, size))
            if whole < len(chunk):
                return batches, chunk[whole:]  # only the last megabatch can be short
        return batches, indices[:0]

    def epoch_batches(self, epoch: int) -> np.ndarray:
        """[steps_per_epoch, G]: the global batches of ``epoch``, each in length order (longest first)."""
        if epoch != self._epoch:
            generator = self._generator(epoch)
            batches, leftovers = [], []
            for modality in (True, False):
                indices = np.flatnonzero(self.has_image == modality)
                indices = indices[torch.randperm(len(indices), generator=generator).numpy()]
                full, rest = self._sorted_batches(indices)
                batches += full
                leftovers.append(rest)
            batches += self._sorted_batches(np.concatenate(leftovers))[0]  # mixed, the last < G dropped
            order = torch.randperm(len(batches), generator=generator).numpy()
            self._epoch, self._batches = epoch, np.stack([batches[i] for i in order])
        return self._batches

    def step_batch(self, step: int) -> np.ndarray:
        """The G records of optimiser step ``step`` (all ranks, all accumulation steps), in length order."""
        epoch, index = divmod(step, self.steps_per_epoch)
        return self.epoch_batches(epoch)[index]

    def __iter__(self):
        step = self.start_step
        while True:
            micro = self.step_batch(step).reshape(self.accumulation * self.world_size, self.micro_batch)
            for accumulation_step in range(self.accumulation):
                yield micro[accumulation_step * self.world_size + self.rank].tolist()
            step += 1


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of a right-padded batch's positions that are padding, over all ``batches`` (lists of indices)."""
    real = padded = 0
    for batch in batches:
        sizes = [lengths[i] for i in batch]
        real += sum(sizes)
        padded += max(sizes) * len(sizes)
    return 1.0 - real / padded if padded else 0.0


def default_num_workers(
    accelerator: str, env: Mapping[str, str] | None = None, cpus: int | None = None
) -> int:
    """Loader workers per training process: none on a CPU run (its cores train), else one CPU short of the
    process's share (SLURM_CPUS_PER_TASK, or the machine's CPUs over its GPUs), so the JPEG decoding and
    CLIP preprocessing of the next batches run beside the step instead of inside it (docs/GPU.md)."""
    if accelerator not in ("gpu", "cuda"):
        return 0
    env = os.environ if env is None else env
    if env.get("SLURM_CPUS_PER_TASK"):
        return max(int(env["SLURM_CPUS_PER_TASK"]) - 1, 1)
    cpus = cpus or os.cpu_count() or 2
    gpus = max(torch.cuda.device_count(), 1)
    return min(max(cpus // gpus - 1, 1), 8)


def loader_settings(loader: Mapping[str, Any], accelerator: str) -> dict[str, Any]:
    """DataLoader keyword arguments from the config's ``loader`` section; ``auto`` follows the accelerator
    (``trainer.accelerator``): workers and pinned memory on a GPU, neither on a CPU."""
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    workers = loader.get("num_workers", "auto")
    pin = loader.get("pin_memory", "auto")
    settings = {
        "num_workers": default_num_workers("gpu" if on_gpu else "cpu") if workers == "auto" else int(workers),
        "pin_memory": on_gpu if pin == "auto" else bool(pin),
    }
    if settings["num_workers"] > 0 and loader.get("prefetch_factor") is not None:
        settings["prefetch_factor"] = int(loader["prefetch_factor"])
    return settings


class VLMDataModule(L.LightningDataModule):
    """Loaders over already-built datasets (see `vlmscale.data.build_datasets`).

    ``group_by_length`` batches the training split with :class:`GroupedBatchSampler` (the dataset must have
    ``lengths()``, as :class:`~vlmscale.data.llava.LlavaDataset` does); otherwise :class:`StepIndexedSampler`.
    ``loader_kwargs`` go to every DataLoader (workers, pinned memory, prefetch: :func:`loader_settings`).
    """

    def __init__(
        self,
        datasets: Mapping[str, Dataset],
        collate_fn,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        group_by_length: bool = False,
        loader_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.datasets = dict(datasets)
        self.collate_fn = collate_fn
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.loader_kwargs = {"num_workers": num_workers, **(loader_kwargs or {})}
        self.seed = seed
        self.group_by_length = group_by_length

    @property
    def num_workers(self) -> int:
        return int(self.loader_kwargs["num_workers"])

    def _loader(
        self,
        split: str,
        batch_size: int = 1,
        sampler: Sampler | None = None,
        batch_sampler: Sampler | None = None,
    ) -> DataLoader:
        if split not in self.datasets:
            raise KeyError(f"no {split!r} split; the data config provides {sorted(self.datasets)}")
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            sampler=sampler,
            batch_sampler=batch_sampler,
            shuffle=False,
            collate_fn=self.collate_fn,
            persistent_workers=self.num_workers > 0,
            **self.loader_kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        # Called after a checkpoint's loop state is restored, so global_step is where training resumes.
        # The samplers shard across ranks themselves (Trainer(use_distributed_sampler=False), see conf/trainer).
        trainer = self.trainer
        step, accumulation, rank, world = 0, 1, 0, 1
        if trainer is not None:
            step, accumulation = trainer.global_step, trainer.accumulate_grad_batches
            rank, world = trainer.global_rank, trainer.world_size
        train = self.datasets["train"]
        if self.group_by_length:
            lengths, has_image = train.lengths()
            batches = GroupedBatchSampler(
                lengths, has_image, self.batch_size, accumulation, world, rank, self.seed, start_step=step
            )
            return self._loader("train", batch_sampler=batches)
        consumed = step * accumulation * self.batch_size * world
        sampler = StepIndexedSampler(len(train), seed=self.seed, start=consumed, rank=rank, world_size=world)
        return self._loader("train", self.batch_size, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)
