"""Tiny CUDA-test models and batches (imported by the gpu tests; conftest.py holds only the skip hook)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

CONF = Path(__file__).resolve().parents[2] / "conf"


def load_conf(group: str, name: str) -> dict:
    cfg = yaml.safe_load((CONF / group / f"{name}.yaml").read_text())
    cfg.pop("defaults", None)
    return cfg


def tiny_vlm(visual_tokens: int = 16, seed: int = 0, dtype: str = "float32"):
    """tiny-xs Qwen2 + tiny-clip + QueCC, random init, its random ids: (vlm, vocab)."""
    from vlmscale.models import VisionLanguageModel, build_connector, build_llm, build_vision_tower

    torch.manual_seed(seed)
    tower = build_vision_tower(**{**load_conf("vision", "tiny-clip"), "dtype": dtype}, image_processor=False)
    llm = build_llm(**{**load_conf("llm", "tiny-xs"), "dtype": dtype})
    connector = build_connector(
        "quecc",
        "mlp2x_gelu",
        num_heads=8,
        visual_tokens=visual_tokens,
        vision_width=tower.hidden_size,
        multilevel_width=tower.multilevel_size,
        llm_width=llm.hidden_size,
        grid=tower.grid,
    )
    vocab = llm.model.get_input_embeddings().weight.shape[0]
    return VisionLanguageModel(tower, connector, llm, vocab - 1, vocab - 2, vocab - 3), vocab


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
