"""Micro-batch x accumulation x GPUs = LLaVA's global batch, with the largest micro-batch that fits."""

import pytest

from vlmscale.batching import LLAVA_GLOBAL_BATCH, global_batch, split_global_batch


def test_llava_settings_on_eight_gpus_need_no_accumulation():
    assert split_global_batch(LLAVA_GLOBAL_BATCH["pretrain"], 8, 32) == (32, 1)
    assert split_global_batch(LLAVA_GLOBAL_BATCH["finetune"], 8, 16) == (16, 1)


@pytest.mark.parametrize(
    "world,max_micro,expected",
    [(1, 16, (16, 8)), (2, 64, (64, 1)), (4, 12, (8, 4)), (1, 7, (4, 32)), (8, 1, (1, 16))],
)
def test_fewer_gpus_or_less_memory_accumulate_more(world, max_micro, expected):
    assert split_global_batch(128, world, max_micro) == expected


def test_every_split_keeps_the_global_batch_and_the_largest_micro_batch():
    for size in (128, 256, 96):
        for world in (1, 2, 3, 4, 8, 16):
            if size % world:
                continue
            for max_micro in range(1, 40):
                micro, accumulation = split_global_batch(size, world, max_micro)
                assert global_batch(micro, accumulation, world) == size and micro <= max_micro
                assert not any((size // world) % m == 0 for m in range(micro + 1, max_micro + 1))


def test_impossible_splits_say_why():
    with pytest.raises(ValueError, match="does not split evenly over 3 GPUs"):
        split_global_batch(128, 3, 16)
    with pytest.raises(ValueError, match="must all be >= 1"):
        split_global_batch(128, 1, 0)
