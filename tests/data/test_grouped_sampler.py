"""Length-grouped batches: exact resume by step, ranks disjoint and covering each global batch, less padding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vlmscale.data.module import GroupedBatchSampler, StepIndexedSampler, padding_fraction


def llava_like(n: int = 2000, seed: int = 0) -> tuple[list[int], list[bool]]:
    """Long-tailed lengths (log-normal, as chat data is) with ~6% text-only records that run longer."""
    rng = np.random.default_rng(seed)
    has_image = rng.random(n) > 0.06
    lengths = np.where(has_image, rng.lognormal(4.5, 0.8, n), rng.lognormal(6.0, 0.7, n))
    return [int(x) + 1 for x in lengths], has_image.tolist()


def take(sampler, count: int) -> list[list[int]]:
    return list(itertools.islice(iter(sampler), count))


@pytest.mark.parametrize("accumulation,world", [(1, 1), (2, 1), (1, 4), (3, 2)])
def test_resumed_sampler_yields_what_the_uninterrupted_one_yields(accumulation, world):
    lengths, has_image = llava_like()
    per_step = accumulation  # micro-batches one rank draws per optimiser step
    for rank in range(world):
        args = (lengths, has_image, 4, accumulation, world, rank)
        full = take(GroupedBatchSampler(*args, seed=7), 60 * per_step)  # crosses epoch boundaries
        for step in (0, 1, 13, 41):  # a "kill" after `step` optimiser steps
            resumed = take(GroupedBatchSampler(*args, seed=7, start_step=step), 10 * per_step)
            assert resumed == full[step * per_step : (step + 10) * per_step]


def test_ranks_take_disjoint_slices_covering_each_global_batch():
    lengths, has_image = llava_like()
    micro, accumulation, world = 4, 2, 3
    streams = [
        take(
            GroupedBatchSampler(lengths, has_image, micro, accumulation, world, rank, seed=1),
            40 * accumulation,
        )
        for rank in range(world)
    ]
    reference = GroupedBatchSampler(lengths, has_image, micro, accumulation, world, seed=1)
    for step in range(40):
        taken = [
            i for s in streams for i in itertools.chain(*s[step * accumulation : (step + 1) * accumulation])
        ]
        assert len(taken) == len(set(taken)) == micro * accumulation * world  # disjoint
        assert sorted(taken) == sorted(reference.step_batch(step).tolist())  # and together the global batch


def test_a_step_trains_on_the_same_records_however_the_global_batch_is_split():
    """Only G = micro x accumulation x GPUs decides a step's records (the batching helper keeps G)."""
    lengths, has_image = llava_like()
    splits = [(16, 1, 1), (8, 2, 1), (4, 1, 4), (2, 2, 4)]
    samplers = [GroupedBatchSampler(lengths, has_image, *split, seed=3) for split in splits]
    for step in (0, 5, 77, 200):
        records = [sorted(s.step_batch(step).tolist()) for s in samplers]
        assert all(r == records[0] for r in records)


def test_each_epoch_uses_every_record_at_most_once_and_keeps_modalities_apart():
    lengths, has_image = llava_like(1003)
    sampler = GroupedBatchSampler(lengths, has_image, 4, 2, 2, seed=0)
    for epoch in (0, 1):
        batches = sampler.epoch_batches(epoch)
        used = batches.ravel().tolist()
        assert len(used) == len(set(used)) == 1003 // 16 * 16  # fewer than one global batch dropped
        modality = np.asarray(has_image)[batches]
        mixed = [row for row in modality if row.any() and not row.all()]
        assert len(mixed) <= 1  # only the pooled leftovers of the two modalities
    assert not np.array_equal(sampler.epoch_batches(0), sampler.epoch_batches(1))
    other_seed = GroupedBatchSampler(lengths, has_image, 4, 2, 2, seed=1)
    assert not np.array_equal(sampler.epoch_batches(0), other_seed.epoch_batches(0))


def test_grouping_cuts_padding():
    lengths, has_image = llava_like(4000)
    micro = 16
    grouped = take(GroupedBatchSampler(lengths, has_image, micro, seed=0), 200)
    flat = take(StepIndexedSampler(len(lengths), seed=0), 200 * micro)
    random = [flat[i : i + micro] for i in range(0, len(flat), micro)]
    before, after = padding_fraction(random, lengths), padding_fraction(grouped, lengths)
    assert before > 0.5 and after < before / 4, (before, after)


def test_a_split_smaller_than_one_global_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        GroupedBatchSampler([3] * 10, [True] * 10, micro_batch=4, accumulation=2, world_size=2)
