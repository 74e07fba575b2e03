"""Helpers of the feature cache tests (also imported by the subprocesses they start): a tiny random tower,
the parts of a run config the cache reads, a LLaVA-format data config."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

CONF = Path(__file__).resolve().parents[2] / "conf"
SIZES = {"train": 12, "val": 4, "test": 4}


def vision_config(**over) -> dict:
    cfg = yaml.safe_load((CONF / "vision" / "tiny-clip.yaml").read_text())
    return {**cfg, "pretrain": None, "feature_cache": "auto", **over}  # random weights: no pretraining run


def make_tower(seed: int = 0, **over):
    from vlmscale.models import build_vision_tower

    torch.manual_seed(seed)
    return build_vision_tower(**vision_config(**over)).eval()


def run_config(cache_dir, data: dict, **vision) -> dict:
    """The parts of a plain run config the feature cache reads."""
    return {
        "vision": vision_config(**vision),
        "data": data,
        "paths": {"cache_dir": str(cache_dir)},
        "trainer": {"accelerator": "cpu", "precision": "32-true"},
        "loader": {"num_workers": 0},
    }


def llava_data(folder) -> dict:
    split = {"data_path": str(folder / "data.json"), "image_folder": str(folder / "images")}
    return {"source": "llava", "splits": {"train": split}, "image_aspect_ratio": "pad", "max_length": 64}
