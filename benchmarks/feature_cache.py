"""Training step time with the frozen tower's feature cache against the live tower (PNG decode + tower forward).

    python -m benchmarks.feature_cache [--llm tiny-m] [--visual-tokens 16] [--steps 30] [--rounds 3] [--threads 1]

Both loops are the bare training loop of `benchmarks/train_overhead.py` (the module's forward, backward, AdamW,
clipping) over the same training stream of the default synthetic suite and the same module: one reads
``pixel_values`` (each image decoded and run through the tiny CLIP every step), the other the cached features
(a memory-mapped read, no tower). Rounds alternate (live, cached, live, ...) so machine noise hits both; the
medians and their ratio are printed, in this process's CPU seconds (on a shared machine other jobs stretch the
wall clock, not these) and in wall seconds, after a check that one batch gives the same loss both ways. Also
printed: the entry's size and build time (from its meta.json; the first run builds it, the later ones find it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir

from vlmscale.build import build_datamodule, build_module
from vlmscale.features import entry_bytes

CONF = Path(__file__).resolve().parents[1] / "conf"
warnings.filterwarnings("ignore")


def setup(args):
    overrides = [
        f"llm={args.llm}",
        f"visual_tokens={args.visual_tokens}",
        "stage=finetune",
        "data.progress=false",
        f"threads={args.threads}",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        live_cfg = compose("train", overrides=[*overrides, "vision.feature_cache=off"])
        cached_cfg = compose("train", overrides=[*overrides, "vision.feature_cache=on"])
    L.seed_everything(0, verbose=False)
    module, tokenizer = build_module(live_cfg)
    live = build_datamodule(live_cfg, tokenizer, module.vlm)
    cached = build_datamodule(cached_cfg, tokenizer, module.vlm)  # builds the entry the first time
    return module, live, cached


def same_loss(module, live, cached) -> bool:
    """One batch of the training stream, live and cached: the same loss to the bit."""
    module.eval()
    with torch.no_grad():
        losses = [module._forward(next(iter(dm.train_dataloader()))).loss for dm in (live, cached)]
    return bool(torch.equal(*losses))


def seconds_per_step(module, datamodule, steps: int) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) per optimiser step."""
    optimizer, scheduler = module.make_optimizer(steps)
    module.train()
    batches = iter(datamodule.train_dataloader())
    params = [p for p in module.parameters() if p.requires_grad]
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(steps):
        loss = module._forward(next(batches)).loss  # the batch's loading (decode or memmap read) is timed
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
    return (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--llm", default="tiny-m")
    parser.add_argument("--visual-tokens", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    module, live, cached = setup(args)
    entry = cached.datasets["train"].image_features.array_path.parent
    meta = json.loads((entry / "meta.json").read_text())
    images = sum(split["count"] for split in meta["splits"].values())
    print(f"entry {entry}")
    print(
        f"  {images} images x {len(meta['layers'])} layers {meta['layers']}: {entry_bytes(entry) / 2**30:.2f} GiB, "
        f"built in {meta['seconds']:.0f} s"
    )
    print(f"one batch, live and cached: the same loss: {same_loss(module, live, cached)}")
    seconds_per_step(module, live, 3)  # warm-up: allocator, kernels, page cache
    seconds_per_step(module, cached, 3)
    times = {"live": [], "cached": []}
    for r in range(args.rounds):
        for name, datamodule in (("live", live), ("cached", cached)):
            times[name].append(seconds_per_step(module, datamodule, args.steps))
        print(
            f"round {r + 1}: live {ms(times['live'][-1])}, cached {ms(times['cached'][-1])} (CPU, wall ms/step)"
        )
    cpu = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    wall = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    print(
        f"\n{args.llm}, T={args.visual_tokens}, batch {live.batch_size}, {args.steps} steps x {args.rounds} rounds, "
        f"{args.threads} thread(s), load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(f"live tower : {1e3 * cpu['live']:.0f} ms/step CPU, {1e3 * wall['live']:.0f} ms/step wall")
    print(f"cached     : {1e3 * cpu['cached']:.0f} ms/step CPU, {1e3 * wall['cached']:.0f} ms/step wall")
    print(
        f"ratio live/cached = {cpu['live'] / cpu['cached']:.2f}x CPU, {wall['live'] / wall['cached']:.2f}x wall"
    )


def ms(seconds: tuple[float, float]) -> str:
    return f"{1e3 * seconds[0]:.0f}, {1e3 * seconds[1]:.0f}"


if __name__ == "__main__":
    main()
