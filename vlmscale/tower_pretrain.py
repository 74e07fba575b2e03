"""A tiny vision tower that has seen images: short, deterministic pretraining of the tiny CLIP, cached.

The paper's towers are pretrained CLIP models, frozen while the VLM trains. The tiny CPU tower stands in for
one: it is taught, once, to name what sits where in synthetic scenes (the generator's ``layout``): the shape
and the colour in each 32-pixel quadrant and the glyph in each 16-pixel cell, from the patch features pooled
over that region, on the two layers QueCC and the projector read most (the last two). The scenes come from
their own stream (split ``tower`` of the generator), never from a suite's train/val/test images.

The result is saved as a Hugging Face folder (weights + image processor) under the cache, named by a hash of
the tower config and the pretraining parameters, built once under a file lock (:mod:`vlmscale.cache`); every
sweep point loads the same weights. ``python -m vlmscale.tower_pretrain`` builds it ahead of a sweep.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vlmscale.cache import params_key, publish_dir
from vlmscale.contract import default_cache_dir, to_plain
from vlmscale.data import synthetic as syn
from vlmscale.errors import MissingFileError, UserError, command, int_at_least

log = logging.getLogger(__name__)

TOWER_PRETRAIN_VERSION = 1
DEFAULTS = {"steps": 300, "batch_size": 32, "lr": 2e-3, "seed": 0}


class LayoutHeads(nn.Module):
    """Linear read-outs of region-pooled patch features: quadrant shape / colour, cell glyph (0 = empty)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.shape = nn.Linear(width, len(syn.SHAPES) + 1)
        self.colour = nn.Linear(width, len(syn.COLOURS) + 1)
        self.glyph = nn.Linear(width, len(syn.OCR_ALPHABET) + 1)

    def loss(self, patches: torch.Tensor, grid: int, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        fmap = patches.transpose(1, 2).reshape(patches.shape[0], -1, grid, grid)  # [B, C, G, G]
        quads = F.adaptive_avg_pool2d(fmap, syn.QUADRANTS).flatten(2).transpose(1, 2)  # [B, 4, C]
        cells = F.adaptive_avg_pool2d(fmap, syn.CELLS).flatten(2).transpose(1, 2)  # [B, 16, C]
        return (
            F.cross_entropy(self.shape(quads).flatten(0, 1), labels["shape"].flatten())
            + F.cross_entropy(self.colour(quads).flatten(0, 1), labels["colour"].flatten())
            + F.cross_entropy(self.glyph(cells).flatten(0, 1), labels["glyph"].flatten())
        )


def pretrain_params(config: Mapping[str, Any], **pretrain: Any) -> dict:
    unknown = set(pretrain) - set(DEFAULTS)
    if unknown:
        raise UserError(f"unknown tower pretraining keys {sorted(unknown)}; expected {sorted(DEFAULTS)}")
    return {
        "version": TOWER_PRETRAIN_VERSION,
        "synthetic_version": syn.SYNTHETIC_VERSION,
        "classes": {"shapes": list(syn.SHAPES), "colours": list(syn.COLOURS), "glyphs": syn.OCR_ALPHABET},
        "config": to_plain(dict(config)),
        **{k: type(v)(pretrain.get(k, v)) for k, v in DEFAULTS.items()},
    }


def tower_dir(cache_dir: str | Path | None, params: dict) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return (
        root / f"tower-{params['config'].get('model_type', 'clip')}-pt{params['steps']}-{params_key(params)}"
    )


def _batch(scenes: list[syn.Scene], processor: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    pixels = processor(images=[s.image for s in scenes], return_tensors="pt")["pixel_values"]
    labels = {
        "shape": torch.tensor([[q[0] for q in s.quadrants] for s in scenes]),
        "colour": torch.tensor([[q[1] for q in s.quadrants] for s in scenes]),
        "glyph": torch.tensor([s.cells for s in scenes]),
    }
    return pixels, labels


def pretrain_tower(
    encoder: nn.Module, processor: Any, steps: int, batch_size: int, lr: float, seed: int
) -> list[float]:
    """Train ``encoder`` (an HF CLIP vision model) in place on fresh layout-labelled scenes; returns losses."""
    torch.manual_seed(seed)
    cfg = encoder.config
    grid = cfg.image_size // cfg.patch_size
    heads = LayoutHeads(cfg.hidden_size)
    params = [*encoder.parameters(), *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    scenes = syn.generate_scenes(
        "tower", steps * batch_size, seed, cfg.image_size, syn.DEFAULT_FAMILY_WEIGHTS
    )
    encoder.train()
    losses = []
    for _ in range(steps):
        pixels, labels = _batch([next(scenes)[1] for _ in range(batch_size)], processor)
        hidden = encoder(pixels, output_hidden_states=True).hidden_states
        # the last two layers: what the projector (select_layer -2) and QueCC's multi-level keys read most
        loss = sum(heads.loss(h[:, -grid * grid :], grid, labels) for h in hidden[-2:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    encoder.eval()
    return losses


def ensure_pretrained_tower(
    config: Mapping[str, Any], cache_dir: str | Path | None = None, **pretrain: Any
) -> Path:
    """The pretrained tower's HF folder for this config and these pretraining parameters, built once."""
    import transformers

    from vlmscale.models.vision import default_image_processor

    params = pretrain_params(config, **pretrain)
    final = tower_dir(cache_dir, params)

    def build(tmp: Path) -> None:
        # Its own RNG stream: a run that happens to build the cache must draw the same weights afterwards as
        # a run that finds it built (kill/resume and sweep points compare such runs).
        with torch.random.fork_rng(devices=[]):
            _build(tmp)

    def _build(tmp: Path) -> None:
        cfg = dict(params["config"])
        hf_config = transformers.AutoConfig.for_model(cfg.pop("model_type", "clip_vision_model"), **cfg)
        torch.manual_seed(params["seed"])
        encoder = transformers.CLIPVisionModel._from_config(hf_config)
        processor = default_image_processor("clip", hf_config.image_size)
        start = time.time()
        losses = pretrain_tower(
            encoder, processor, params["steps"], params["batch_size"], params["lr"], params["seed"]
        )
        encoder.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        window = max(1, min(10, len(losses) // 2))  # mean loss over the first and the last few steps
        first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
        meta = {"params": params, "loss_first": first, "loss_last": last, "seconds": time.time() - start}
        (tmp / "pretrain.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        log.info("tiny tower pretrained in %.0f s: loss %.3f -> %.3f", meta["seconds"], first, last)

    if not final.is_dir():
        log.info("pretraining the tiny vision tower once into %s (%d steps)", final, params["steps"])
    return publish_dir(final, build)


DEFAULT_VISION_CONFIG = Path(__file__).resolve().parent.parent / "conf" / "vision" / "tiny-clip.yaml"


@command
def main(argv: list[str]) -> None:
    """Build the default tiny tower's cache entry (what `make demo` runs before the sweep)."""
    import yaml

    parser = argparse.ArgumentParser(prog="python -m vlmscale.tower_pretrain", description=main.__doc__)
    parser.add_argument(
        "--vision-config",
        type=Path,
        default=DEFAULT_VISION_CONFIG,
        help="a vision group YAML with a tiny config",
    )
    parser.add_argument("--cache-dir", default=None, help="default: $VLMSCALE_CACHE or ~/.cache/vlmscale")
    parser.add_argument("--threads", type=int_at_least(1), default=None, help="torch threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.vision_config.is_file():
        raise MissingFileError(
            f"--vision-config {args.vision_config}: no such file (e.g. conf/vision/tiny-clip.yaml)"
        )
    vision = yaml.safe_load(args.vision_config.read_text()) or {}
    if not vision.get("config"):
        raise UserError(
            f"--vision-config {args.vision_config} has no tiny `config:` to pretrain (a pretrained tower needs none)"
        )
    pretrain = {k: v for k, v in (vision.get("pretrain") or {}).items() if k != "cache_dir"}
    print(ensure_pretrained_tower(vision["config"], args.cache_dir, **pretrain))


if __name__ == "__main__":
    sys.exit(main())
