"""Lightning's loop against a bare PyTorch loop: steps/s on the same VLM, data, optimiser and schedule.

    python -m benchmarks.train_overhead [--llm tiny-m] [--steps 60] [--rounds 3] [--threads 1]
    python -m benchmarks.train_overhead --shape real --layers 2 --batch 2 --seq 128 --steps 6 --rounds 2

Both loops draw the same batches, run AdamW with the module's own `make_optimizer` (warmup + cosine), clip
gradients at 1.0, and do no validation, logging to files or checkpointing, so the difference is the loop
itself (Lightning's hooks, its progress bookkeeping, `training_step`'s `self.log` and non-finite check).
Rounds alternate (bare, Lightning, bare, ...) so machine noise hits both; the medians, their ratio and the
per-step difference in milliseconds are printed. Target: Lightning overhead <= 5%.

Shapes: `tiny` (default) is a conf/ tiny LLM on the synthetic suite through the real DataModule. `real` is the
GPU check's model (`benchmarks.gpu_check`: CLIP-L/336-shaped tower, QueCC, Qwen1.5-0.5B-shaped LLM with its
151936-word vocabulary) cut to `--layers` layers in tower and LLM so a CPU can step it, on random batches of
`--batch` x `--seq` tokens: the per-step overhead in ms is what carries over to a GPU step (224 ms on an H200).
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
    return setup_real(args) if args.shape == "real" else setup_tiny(args)


def setup_real(args):
    """The GPU check's real-shaped model with few layers, and a loader over a cycled pool of random batches."""
    import types

    from torch.utils.data import DataLoader

    from benchmarks.gpu_check import build_model, random_batches, shape
    from vlmscale.lit import VLMLightningModule

    sizes = shape(tiny=False)
    layers = args.layers
    sizes["vision"] = {
        **sizes["vision"],
        "config": {**sizes["vision"]["config"], "num_hidden_layers": layers},
        "multilevel_layers": [i % layers + 1 for i in range(4)],  # QueCC still reads four levels
    }
    sizes["llm"] = {**sizes["llm"], "config": {**sizes["llm"]["config"], "num_hidden_layers": layers}}
    sizes.update(batch=args.batch, text_len=args.seq)
    vlm = build_model(sizes, args.visual_tokens, "float32")
    tokenizer = types.SimpleNamespace(eos_token_id=vlm.eos_token_id, chat_template=None)
    module = VLMLightningModule(vlm, tokenizer, stage="finetune", optim={"lr": 2e-5, "connector_lr": 1e-4})
    pool = random_batches(vlm, sizes, 2 * args.batch)

    class Cycled(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 10**6

        def __getitem__(self, index: int):
            return pool[index % len(pool)]

    loader = DataLoader(Cycled(), batch_size=args.batch)
    return module, types.SimpleNamespace(train_dataloader=lambda: loader, loader=loader)


def setup_tiny(args):
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
    if isinstance(datamodule, L.LightningDataModule):
        trainer.fit(module, datamodule=datamodule)
    else:
        trainer.fit(module, train_dataloaders=datamodule.loader)
    return steps / timer.elapsed


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.train_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--shape", choices=("tiny", "real"), default="tiny")
    parser.add_argument(
        "--llm",
        default="tiny-m",
        choices=sorted(p.stem for p in (CONF / "llm").glob("tiny-*.yaml")),
        help="tiny shape: the conf/llm option",
    )
    parser.add_argument(
        "--layers", type=int_at_least(1), default=2, help="real shape: layers of tower and LLM"
    )
    parser.add_argument("--batch", type=int_at_least(1), default=2, help="real shape: rows per step")
    parser.add_argument("--seq", type=int_at_least(1), default=128, help="real shape: text tokens per row")
    parser.add_argument(
        "--visual-tokens", type=int_at_least(1), default=16, help="T (must tile the tower's grid)"
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
    what = (
        f"{args.llm}"
        if args.shape == "tiny"
        else f"real shape, {args.layers} layers, batch {args.batch} x {args.seq} text tokens"
    )
    print(
        f"\n{what}, T={args.visual_tokens}, {args.steps} steps x {args.rounds} rounds, {args.threads} thread(s)"
    )
    print(f"bare PyTorch : {b:.3f} steps/s ({1e3 / b:.1f} ms/step)")
    print(f"Lightning    : {li:.3f} steps/s ({1e3 / li:.1f} ms/step)")
    print(
        f"ratio lightning/bare = {li / b:.3f}  (overhead {100 * (1 - li / b):+.1f}%, "
        f"{1e3 / li - 1e3 / b:+.1f} ms/step; target <= 5%)"
    )


if __name__ == "__main__":
    sys.exit(main())
