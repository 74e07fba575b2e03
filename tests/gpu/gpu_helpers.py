"""Tiny models and batches for the GPU-path tests, built the way the GPU check builds its models (random init,
no image processor, so no Pillow needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402


def tiny_vlm(visual_tokens: int = 16, dtype: str = "float32"):
    """tiny-m Qwen2 + tiny-clip + QueCC (seed 0): (vlm, vocab)."""
    vlm = gpu_check.build_model(gpu_check.shape(tiny=True), visual_tokens, dtype)
    return vlm, vlm.llm.model.get_input_embeddings().weight.shape[0]


def random_batch(vocab: int, image_id: int, batch: int = 4, length: int = 24, seed: int = 0) -> dict:
    """Image rows with <image> at column 2 and labels on the second half (a fixed batch to overfit)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab - 3, (batch, length), generator=g)
    ids[:, 2] = image_id
    labels = ids.clone()
    labels[:, : length // 2] = -100
    return {
        "pixel_values": torch.randn(batch, 3, 64, 64, generator=g),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "query_ids": torch.randint(0, vocab - 3, (batch, 6), generator=g),
        "query_attention_mask": torch.ones(batch, 6, dtype=torch.long),
        "has_image": torch.ones(batch, dtype=torch.bool),
    }
