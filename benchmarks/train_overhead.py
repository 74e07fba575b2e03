"""Lightning's loop against a bare PyTorch loop: steps/s on the same tiny VLM, data, optimiser and schedule.

    .venv/bin/python -m benchmarks.train_overhead [--llm tiny-m] [--steps 60] [--rounds 3] [--threads 1]

Both loops draw the same batches (the training stream of VLMDataModule), run AdamW with the module's own
`configure_optimizers` (warmup + cosine), clip gradients at 1.0, and do no validation, logging or
checkpointing, so the difference is the loop itself. Rounds alternate (bare, Lightning, bare, ...) so machine
noise hits both; the medians and their ratio are printed. Target: Lightning overhead <= 5%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir

from vlmscale.build import build_datamodule, build_module
from vlmscale.errors import command, int_at_least

CONF = Path(__file__).resolve().parents[1] / "conf"
warnings.filterwarnings("ignore")


def setup(args):
    overrides = [
        f"llm={args.llm}",
        f"visual_tokens={args.visual_tokens}",
        "stage=finetune",
        "data.progress=false",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    L.seed_everything(0, verbose=False)
    module, tokenizer = build_module(cfg)
    datamodule = build_datamodule(cfg, tokenizer, module.vlm)
    return module, datamodule


def bare_loop(module, datamodule, steps: int) -> float:
    optimizer, scheduler = module.make_optimizer(steps)
    module.train()
    batches = iter(datamodule.train_dataloader())
    params = [p for p in module.parameters() if p.requires_grad]
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        loss = module._forward(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
    return steps / (time.perf_counter() - start)


class StepTimer(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        self.elapsed = time.perf_counter() - self.start


def lightning_loop(module, datamodule, steps: int) -> float:
    timer = StepTimer()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
        callbacks=[timer],
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=datamodule)
    return steps / timer.elapsed


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.train_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--llm", default="tiny-m", choices=sorted(p.stem for p in (CONF / "llm").glob("tiny-*.yaml"))
    )
    parser.add_argument(
        "--visual-tokens", type=int_at_least(1), default=16, help="T (must tile the tiny grid)"
    )
    parser.add_argument("--steps", type=int_at_least(1), default=60)
    parser.add_argument("--rounds", type=int_at_least(1), default=3)
    parser.add_argument("--threads", type=int_at_least(1), default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    module, datamodule = setup(args)
    bare_loop(module, datamodule, 5)  # warm-up: allocator, kernels, image cache
    bare, lit = [], []
    for r in range(args.rounds):
        bare.append(bare_loop(module, datamodule, args.steps))
        lit.append(lightning_loop(module, datamodule, args.steps))
        print(f"round {r + 1}: bare {bare[-1]:.2f} steps/s, lightning {lit[-1]:.2f} steps/s")
    b, li = statistics.median(bare), statistics.median(lit)
    print(
        f"\n{args.llm}, T={args.visual_tokens}, {args.steps} steps x {args.rounds} rounds, {args.threads} thread(s)"
    )
    print(f"bare PyTorch : {b:.2f} steps/s")
    print(f"Lightning    : {li:.2f} steps/s")
    print(f"ratio lightning/bare = {li / b:.3f}  (overhead {100 * (1 - li / b):+.1f}%; target <= 5%)")


if __name__ == "__main__":
    sys.exit(main())
