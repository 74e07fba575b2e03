"""The global batch = micro-batch x gradient accumulation x GPUs, kept at LLaVA's on any number of GPUs.

LLaVA-1.5 trains with a global batch of 256 in pretraining and 128 in finetuning (8 GPUs x 32, 8 x 16) and its
learning rates (conf/optim) go with those. A run on other hardware keeps the global batch and changes how it
is split: a smaller micro-batch where memory is short, more accumulation where GPUs are few. Pure functions,
for whoever picks the strategy and the GPU count (`loader.batch_size`, `trainer.accumulate_grad_batches`).
The training stream depends on the global batch alone (`vlmscale.data.module`), so a run resumed on another
number of GPUs with the same global batch sees the same samples at every step.
"""

from __future__ import annotations

LLAVA_GLOBAL_BATCH = {"pretrain": 256, "finetune": 128}


def global_batch(micro_batch: int, accumulation: int, world_size: int) -> int:
    """Samples per optimiser step."""
    return micro_batch * accumulation * world_size


def split_global_batch(global_size: int, world_size: int, max_micro_batch: int) -> tuple[int, int]:
    """``(micro_batch, accumulation)`` with ``micro_batch * accumulation * world_size == global_size``
    exactly and the largest micro-batch that fits in ``max_micro_batch`` (fewest accumulation steps)."""
    if min(global_size, world_size, max_micro_batch) < 1:
        raise ValueError(
            f"global batch {global_size}, {world_size} GPUs and micro-batch <= {max_micro_batch} must all be >= 1"
        )
    if global_size % world_size:
        raise ValueError(
            f"a global batch of {global_size} does not split evenly over {world_size} GPUs; use a GPU count "
            f"that divides it, or another global batch"
        )
    per_gpu = global_size // world_size
    micro = max(m for m in range(1, min(max_micro_batch, per_gpu) + 1) if per_gpu % m == 0)
    return micro, per_gpu // micro
