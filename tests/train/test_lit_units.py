"""Pieces of the training loop that need no model: the resumable data stream, the schedule, stages."""

import itertools

import pytest

from vlmscale.data.module import StepIndexedSampler
from vlmscale.lit import _warmup_cosine, trainable_parts


def test_step_indexed_stream_resumes_exactly():
    full = list(itertools.islice(iter(StepIndexedSampler(10, seed=3)), 35))
    resumed = list(itertools.islice(iter(StepIndexedSampler(10, seed=3, start=17)), 18))
    assert resumed == full[17:]
    # every epoch is a permutation, and epochs differ
    epochs = [full[i : i + 10] for i in (0, 10, 20)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0] != epochs[1]
    assert list(itertools.islice(iter(StepIndexedSampler(10, seed=4)), 10)) != epochs[0]


def test_empty_training_split_is_a_clear_error():
    with pytest.raises(ValueError, match="training split is empty"):
        StepIndexedSampler(0)


def test_warmup_then_cosine_to_floor():
    total, warmup = 100, 10
    values = [_warmup_cosine(s, warmup=warmup, total=total, floor=0.1) for s in range(total)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert _warmup_cosine(total, warmup=warmup, total=total, floor=0.1) == pytest.approx(0.1)


def test_stages():
    assert trainable_parts("pretrain") == ("connector",)
    assert trainable_parts("finetune") == ("connector", "llm")
    with pytest.raises(ValueError, match="pretrain"):
        trainable_parts("sft")


def test_ranks_share_one_stream_and_resume_with_it():
    single = list(itertools.islice(iter(StepIndexedSampler(7, seed=1)), 24))
    ranks = [
        list(itertools.islice(iter(StepIndexedSampler(7, seed=1, rank=r, world_size=3)), 8)) for r in range(3)
    ]
    assert [ranks[i % 3][i // 3] for i in range(24)] == single
    resumed = list(itertools.islice(iter(StepIndexedSampler(7, seed=1, start=12, rank=1, world_size=3)), 4))
    assert resumed == single[13::3][:4]
