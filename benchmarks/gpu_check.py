"""The GPU check: gpu-marked tests, training throughput/MFU under DDP and DeepSpeed ZeRO-2/3, prefill T=1 vs 576.

    scripts/gpu-check.sh                  # on a CUDA machine, < 5 minutes on one H100
    scripts/gpu-check.sh --tiny           # the same steps on CPU at tiny sizes (CI), well under a minute
    scripts/gpu-check.sh --only prefill   # some steps (the names in STEPS)

Steps: `train_ddp` trains as vlmscale does by default (loss at answer positions only, fused AdamW, eager, fp32
tower weights under bf16 autocast); `train_ddp_full_logits`, `train_ddp_foreach`, `train_ddp_compile` and
`train_ddp_bf16_tower` each change one of those (the old loss, the foreach AdamW, torch.compile, a bf16 frozen
tower), `train_zero2`/`train_zero3` run the default under DeepSpeed; on CUDA every training step also counts
host-device syncs per step (3 steps under torch.cuda.set_sync_debug_mode("warn")) and where they come from.
`loss_memory` runs benchmarks.loss_memory (peak memory and time of the loss, full logits vs answers only),
`loader` times the LLaVA loading path with 0-8 workers on the machine's CPUs, `prefill` and `pytest_gpu` as
before. All steps take longer than one 10-minute call; split them with --only (docs/GPU.md).
    python -m benchmarks.gpu_check --convert docs/gpu/gpu-check-h200.json   # a report's rows -> docs/gpu/throughput.json

Every step runs in its own subprocess with its own time limit, so a crash or a hang in one (say DeepSpeed)
leaves the others' numbers; the JSON file ($OUT/gpu-check.json, else outputs/gpu-check.json, or --out) is
rewritten after every step. The timed training steps also become rows of a throughput table (throughput.json
beside the report, or --throughput PATH; vlmscale/throughput.py), which python -m vlmscale.plan prices sweeps
with. Imports are torch, lightning, transformers and vlmscale only (no Hydra): the model
is built with the `vlmscale.models` builders, randomly initialised at the real shapes.

Real shapes: a CLIP ViT-L/14-336-shaped tower (336 px, patch 14, width 1024, 24 layers, frozen) and a
Qwen1.5-0.5B-shaped LLM (hidden 1024, 24 layers, 16 heads, intermediate 2816, vocab 151936), QueCC at T=36,
stage finetune (projector + LLM train), bf16 autocast (fp32 master weights).

Model FLOPs per training step (MFU's numerator; matmuls only, 2 per multiply-add, no recomputation counted):
    3 * B * [2 * N_llm * L + 2 * layers * d_attn * L^2]   LLM forward + backward (N_llm: non-embedding
                                                          parameters + the LM head, L: spliced sequence length)
  + 3 * B * projector_flops(T)                            compressor + MLP forward + backward
  + B * vision_flops + B * query_pass_flops               frozen tower and the no-grad question pass, forward only
The LM head is counted at every position, the old path's work, so MFU compares variants as tokens/s does (the
answer-only loss runs the head on the labelled half of the positions and gets the credit as speed).
MFU = that / step time / the card's dense bf16 peak (H100/H200 SXM 989 TFLOP/s, H100 PCIe 756; override with
VLMSCALE_PEAK_TFLOPS). `mfu_6n` is the conventional 6 * N_llm * tokens alone, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import types
import warnings
from functools import partial
from pathlib import Path
from typing import Any

from vlmscale.errors import command

REPO = Path(__file__).resolve().parents[1]
# Training steps, each one change against train_ddp, which trains as vlmscale does by default: the loss at
# answer positions only, AdamW's fused kernel, eager, the frozen tower's weights in fp32 under bf16 autocast.
TRAIN_VARIANTS = {
    "train_ddp": {},
    "train_ddp_full_logits": {"loss": "full"},  # the old loss: fp32 logits at every position
    "train_ddp_foreach": {"fused": False},  # AdamW's multi-tensor (foreach) path
    "train_ddp_compile": {"compile": True},  # torch.compile of the LLM's layers and the connector
    "train_ddp_bf16_tower": {"tower_dtype": "bfloat16"},  # the frozen tower's weights in bf16 (vision.dtype)
    "train_zero2": {},
    "train_zero3": {},
}
STEPS = (*TRAIN_VARIANTS, "prefill", "loss_memory", "loader", "pytest_gpu")
DEFAULT_TABLE = REPO / "docs" / "gpu" / "throughput.json"
# Wall-clock caps per step (seconds) on a GPU, within --budget; --tiny uses TINY_LIMIT for each.
STEP_LIMITS = {
    **{name: 90 for name in TRAIN_VARIANTS},
    "train_ddp_compile": 300,
    "prefill": 60,
    "loss_memory": 120,
    "loader": 120,
    "pytest_gpu": 200,
}
TINY_LIMIT = 120
PROFILE_STEPS = 3  # --profile: extra steps after the timed ones, under torch.profiler (not in the timings)
SYNC_STEPS = 3  # on CUDA: steps after the timed ones under torch.cuda.set_sync_debug_mode("warn"), counted


def _shape(group: str, name: str) -> dict[str, Any]:
    """A config group's YAML without its weights' source and dtype (each step sets its own)."""
    from vlmscale.assemble import group_config

    cfg = group_config(group, name)
    for key in ("dtype", "pretrained", "pretrain"):
        cfg.pop(key, None)
    return cfg


REAL_VISION = _shape("vision", "clip-vit-l-336-random")
REAL_LLM = {**_shape("llm", "qwen1.5-0.5b-random"), "attn_implementation": "sdpa"}


def shape(tiny: bool) -> dict[str, Any]:
    """Sizes of every step: real (GPU) or tiny (the conf/ tiny-m LLM and tiny-clip tower, CPU)."""
    if not tiny:
        return {
            "vision": REAL_VISION,
            "llm": REAL_LLM,
            "visual_tokens": 36,
            "prefill_tokens": [1, 576],
            "batch": 16,
            "text_len": 476,  # + T - 1 = 511 LLM positions per sample
            "query_len": 32,
            "steps": 30,
            "warmup_steps": 5,
            "prefill_text_len": 64,
            "prefill_batches": [1, 16],
            "prefill_repeats": 10,
        }
    return {
        "vision": _shape("vision", "tiny-clip"),  # random weights: no pretraining run
        "llm": _shape("llm", "tiny-m"),
        "visual_tokens": 16,
        "prefill_tokens": [1, 256],
        "batch": 4,
        "text_len": 32,
        "query_len": 8,
        "steps": 6,
        "warmup_steps": 2,
        "prefill_text_len": 16,
        "prefill_batches": [1, 4],
        "prefill_repeats": 3,
    }


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of the card (no sparsity), for MFU."""
    if os.environ.get("VLMSCALE_PEAK_TFLOPS"):
        return float(os.environ["VLMSCALE_PEAK_TFLOPS"])
    name = device_name.upper()
    if "H100" in name or "H200" in name or "GH200" in name:
        return 756.0 if "PCIE" in name else 989.0
    if "A100" in name:
        return 312.0
    return None


# -- the model and its inputs ------------------------------------------------------------------------------
def build_model(
    sizes: dict[str, Any], visual_tokens: int, dtype: str, device: str = "cpu", tower_dtype: str | None = None
):
    """Tower + QueCC projector + LLM from the plain builders, randomly initialised directly on ``device``
    (a 0.8B model takes tens of seconds to initialise on a CPU), with the ids the random batches use."""
    import torch

    from vlmscale.models import VisionLanguageModel, build_llm, build_vision_tower, resolve_dtype

    torch.manual_seed(0)
    with torch.device(device):
        # Random pixels go straight in: no image processor, so no Pillow needed on the GPU machine.
        tower_kwargs = {**sizes["vision"], "dtype": tower_dtype or dtype}
        tower = build_vision_tower(**tower_kwargs, image_processor=False)
        llm = build_llm(**{**sizes["llm"], "dtype": dtype})
        connector = build_quecc(tower, llm, visual_tokens).to(resolve_dtype(dtype))
    vocab = llm.model.get_input_embeddings().weight.shape[0]
    image_id, pad_id, eos_id = vocab - 1, vocab - 2, vocab - 3  # any ids the random vocabulary holds
    return VisionLanguageModel(tower, connector, llm, image_id, pad_id, eos_id)


def build_quecc(tower, llm, visual_tokens: int):
    """QueCC + LLaVA's two-layer GELU MLP between this tower and this LLM (conf/compressor/quecc.yaml +
    conf/projector/mlp2x_gelu.yaml)."""
    from vlmscale.models import build_connector

    return build_connector(
        "quecc",
        "mlp2x_gelu",
        num_heads=8,
        visual_tokens=visual_tokens,
        vision_width=tower.hidden_size,
        multilevel_width=tower.multilevel_size,
        llm_width=llm.hidden_size,
        grid=tower.grid,
    )


def random_batches(vlm, sizes: dict[str, Any], count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` random samples: <image> after a 4-token prefix, the first half of the text masked as prompt.
    Ids and sizes are read once here (under ZeRO-3 the embedding weight is partitioned, its shape empty)."""
    import torch

    from vlmscale.contract import IGNORE_INDEX

    generator = torch.Generator().manual_seed(seed)
    vocab = vlm.llm.model.get_input_embeddings().weight.shape[0]
    length, query, size = sizes["text_len"], sizes["query_len"], vlm.vision.image_size
    samples = []
    for _ in range(count):
        ids = torch.randint(0, vocab - 3, (length,), generator=generator)
        ids[4] = vlm.image_token_id
        labels = ids.clone()
        labels[: length // 2] = IGNORE_INDEX
        samples.append(
            {
                "pixel_values": torch.randn(3, size, size, generator=generator),
                "input_ids": ids,
                "attention_mask": torch.ones(length, dtype=torch.long),
                "labels": labels,
                "query_ids": torch.randint(0, vocab - 3, (query,), generator=generator),
                "query_attention_mask": torch.ones(query, dtype=torch.long),
                "has_image": torch.tensor(True),
            }
        )
    return samples


def step_flops(vlm, sizes: dict[str, Any]) -> dict[str, float]:
    """Model FLOPs of one training step (vlmscale.flops.training_flops, as python -m vlmscale.plan prices a
    sweep) and the conventional 6 * N * tokens."""
    from vlmscale.flops import _attn_width, llm_params, llm_pass_flops, query_pass_flops, training_flops

    model = vlm.llm.model
    config = model.config
    d_attn, layers = _attn_width(config), config.num_hidden_layers
    non_embedding = llm_params(model)["non_embedding"]
    lm_head = config.vocab_size * config.hidden_size
    batch, length = sizes["batch"], sizes["text_len"] - 1 + vlm.visual_tokens
    llm = llm_pass_flops(non_embedding, lm_head, layers, d_attn, length)
    image_side = vlm.vision.flops() + query_pass_flops(non_embedding, layers, d_attn, sizes["query_len"])
    per_sample = training_flops(llm, sum(vlm.connector.flops().values()), image_side)
    return {
        "model_flops_per_step": batch * per_sample,
        "six_n_flops_per_step": 6.0 * (non_embedding + lm_head) * batch * length,
        "llm_matmul_params": non_embedding + lm_head,
        "tokens_per_step": batch * length,
    }


# -- steps (each runs in its own process) ------------------------------------------------------------------
def strategy_for(step: str):
    from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy

    if not step.startswith("train_zero"):  # train_ddp and its variants
        return DDPStrategy()
    import yaml

    stage = step[-1]
    strategy = yaml.safe_load((REPO / "conf" / "trainer" / f"deepspeed_zero{stage}.yaml").read_text())
    kwargs = {k: v for k, v in strategy["strategy"].items() if not k.startswith("_")}
    return DeepSpeedStrategy(**kwargs)  # the project's own ZeRO settings


def training_module(vlm, fused: bool | None = None, compile: bool = False):
    """vlmscale's VLMLightningModule (stage finetune: projector + LLM train), or, where it cannot be imported
    (vlmscale.data needs Pillow), a bare module with the same trainable parts and AdamW, so the numbers come."""
    import lightning as L
    import torch

    try:
        from vlmscale.lit import VLMLightningModule
    except ImportError as err:
        kind = f"fallback: vlmscale.lit not importable ({err})"
    else:
        # Outside validation VLMLightningModule reads only eos_token_id / chat_template from the tokenizer.
        tokenizer = types.SimpleNamespace(eos_token_id=vlm.eos_token_id, chat_template=None)
        optim = {"lr": 2e-5, "connector_lr": 1e-4, "warmup_ratio": 0.0, "fused": fused}
        module = VLMLightningModule(vlm, tokenizer, stage="finetune", optim=optim, compile=compile)
        return module, "vlmscale.lit.VLMLightningModule"

    class Finetune(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.vlm = vlm
            vlm.vision.requires_grad_(False)

        def training_step(self, batch, batch_idx):
            return self.vlm(**batch).loss

        def configure_optimizers(self):
            return torch.optim.AdamW([p for p in self.vlm.parameters() if p.requires_grad], lr=2e-5)

    return Finetune(), kind


def top_ops(profiler, cuda: bool, rows: int = 15) -> list[dict[str, Any]]:
    """The ops that took the most self time (device time on a GPU) per profiled step, with their share."""
    attribute = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = list(profiler.key_averages())
    total = sum(getattr(e, attribute, 0) for e in events) or 1
    ranked = sorted(events, key=lambda e: getattr(e, attribute, 0), reverse=True)[:rows]
    return [
        {
            "op": e.key,
            "ms_per_step": getattr(e, attribute, 0) / 1e3 / PROFILE_STEPS,
            "share": getattr(e, attribute, 0) / total,
            "calls_per_step": e.count / PROFILE_STEPS,
        }
        for e in ranked
    ]


def run_train(step: str, tiny: bool, profile: bool = False) -> dict[str, Any]:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, Dataset

    cuda = torch.cuda.is_available()
    variant = TRAIN_VARIANTS[step]
    if step.startswith("train_zero"):
        if not cuda:
            return {"status": "skipped", "reason": "skipped: no CUDA (DeepSpeed needs a GPU)"}
        try:
            import deepspeed  # noqa: F401
        except ImportError as err:
            return {"status": "skipped", "reason": f"skipped: deepspeed not importable ({err})"}
    if variant.get("compile") and not cuda:
        return {
            "status": "skipped",
            "reason": "skipped: no CUDA (tests/train/test_lit_step.py compiles on a CPU)",
        }
    sizes = shape(tiny)
    device = "cuda" if cuda else "cpu"
    vlm = build_model(sizes, sizes["visual_tokens"], "float32", device, variant.get("tower_dtype"))
    if variant.get("loss") == "full":
        from benchmarks.loss_memory import full_logits_loss

        vlm.llm.loss = partial(full_logits_loss, vlm.llm)  # the old path, for this step only
    flops = step_flops(vlm, sizes)
    steps, warmup = sizes["steps"], sizes["warmup_steps"]
    sync_steps = SYNC_STEPS if cuda else 0

    pool = random_batches(vlm, sizes, 2 * sizes["batch"])  # cycled: data costs nothing next to the step

    class Samples(Dataset):
        def __len__(self) -> int:
            return (steps + sync_steps + PROFILE_STEPS) * sizes["batch"]

        def __getitem__(self, index: int) -> dict[str, Any]:
            return pool[index % len(pool)]

    class StepClock(L.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.losses: list[float] = []
            self.profiler = None
            self.syncs: list[warnings.WarningMessage] | None = None
            self._capture = None

        def on_train_start(self, trainer, pl_module) -> None:
            if cuda:
                torch.cuda.reset_peak_memory_stats()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx == steps and sync_steps:  # count host-device syncs: every one warns
                self._capture = warnings.catch_warnings(record=True)
                self.syncs = self._capture.__enter__()
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
            if profile and batch_idx == steps + sync_steps:
                activities = [torch.profiler.ProfilerActivity.CPU]
                activities += [torch.profiler.ProfilerActivity.CUDA] if cuda else []
                self.profiler = torch.profiler.profile(activities=activities)
                self.profiler.__enter__()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if steps <= batch_idx < steps + sync_steps:  # no sync of our own while syncs are counted
                if batch_idx == steps + sync_steps - 1:
                    torch.cuda.set_sync_debug_mode(0)
                    self._capture.__exit__(None, None, None)
                return
            if cuda:
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            self.losses.append(float(loss))
            if self.profiler is not None and batch_idx == steps + sync_steps + PROFILE_STEPS - 1:
                self.profiler.__exit__(None, None, None)

    module, module_kind = training_module(vlm, variant.get("fused"), bool(variant.get("compile")))
    workaround = None
    if step == "train_zero3":
        # QueCC's LocalCrossAttention reads k_proj/v_proj weights directly (not through their forward), so
        # ZeRO-3 would hand it empty partitions of any weight above stage3_param_persistence_threshold (1e6:
        # 1024 x 1024 is above). Marked as a leaf, DeepSpeed gathers all its parameters at its own forward.
        from deepspeed.utils import set_z3_leaf_modules

        from vlmscale.models.quecc import LocalCrossAttention

        set_z3_leaf_modules(vlm, [LocalCrossAttention])
        workaround = "deepspeed.utils.set_z3_leaf_modules(vlm, [LocalCrossAttention])"
    clock = StepClock()
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        strategy=strategy_for(step),
        precision="bf16-mixed",
        max_steps=steps + sync_steps + (PROFILE_STEPS if profile else 0),
        limit_val_batches=0,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        callbacks=[clock],
    )
    loader = DataLoader(Samples(), batch_size=sizes["batch"], pin_memory=cuda)
    started = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    timed = clock.ends[warmup - 1 : steps]
    seconds = (timed[-1] - timed[0]) / (len(timed) - 1)
    durations = [b - a for a, b in zip(timed, timed[1:])]
    result: dict[str, Any] = {
        "status": "ok",
        "variant": variant,
        "optimizer": type(trainer.optimizers[0]).__name__ + str(_kernel(trainer.optimizers[0])),
        "module": module_kind,
        "zero3_workaround": workaround,
        "steps": len(clock.ends[:steps]),
        "timed_steps": len(timed) - 1,
        "batch": sizes["batch"],
        "seq_len": sizes["text_len"] - 1 + sizes["visual_tokens"],
        "visual_tokens": sizes["visual_tokens"],
        "step_seconds": seconds,
        "step_seconds_median_min_max": [statistics.median(durations), min(durations), max(durations)],
        "tokens_per_s": flops["tokens_per_step"] / seconds,
        "fit_seconds": time.perf_counter() - started,
        "loss_first": clock.losses[0],
        "loss_last": clock.losses[steps - 1],
        **flops,
        "achieved_tflops": flops["model_flops_per_step"] / seconds / 1e12,
    }
    if clock.profiler is not None:
        result["profile_top_ops"] = top_ops(clock.profiler, cuda)
    if clock.syncs is not None:
        result.update(sync_report(clock.syncs, sync_steps))
    if cuda:
        peak = peak_tflops(torch.cuda.get_device_name())
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
        result["peak_tflops"] = peak
        if peak:
            result["mfu"] = result["achieved_tflops"] / peak
            result["mfu_6n"] = flops["six_n_flops_per_step"] / seconds / 1e12 / peak
    else:
        result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        result["mfu"] = None  # no meaningful peak for a CPU
    return result


def _kernel(optimizer) -> dict[str, Any]:
    """Which AdamW implementation runs (DeepSpeed wraps the optimiser: look inside)."""
    inner = getattr(optimizer, "optimizer", optimizer)
    defaults = getattr(inner, "defaults", {})
    return {k: defaults.get(k) for k in ("fused", "foreach") if k in defaults}


def sync_report(caught: list, steps: int) -> dict[str, Any]:
    """Host-device syncs per training step and where they come from (file:line of the Python caller)."""
    places: dict[str, int] = {}
    for w in caught:
        if "synchroniz" in str(w.message):
            where = f"{Path(w.filename).name}:{w.lineno}"
            places[where] = places.get(where, 0) + 1
    ranked = sorted(places.items(), key=lambda item: -item[1])
    return {
        "syncs_per_step": sum(places.values()) / steps,
        "sync_sources": [{"where": k, "per_step": v / steps} for k, v in ranked[:15]],
    }


def run_loss_memory(tiny: bool) -> dict[str, Any]:
    """benchmarks.loss_memory on this machine: full logits against answer positions only, at the real shape
    (bf16 autocast on CUDA, peak from torch.cuda; on a CPU the tiny shape and resident-set peaks)."""
    import torch

    from benchmarks.loss_memory import ANSWER_FRACTION, REAL, TINY, measure

    cuda = torch.cuda.is_available()
    sizes = TINY if tiny or not cuda else REAL
    device = "cuda" if cuda else "cpu"
    runs = {
        v: measure(v, sizes, ANSWER_FRACTION, repeats=5 if cuda else 1, device=device) for v in ("old", "new")
    }
    for run in runs.values():
        run.pop("grad_sample")
    old, new = runs["old"], runs["new"]
    return {
        "status": "ok",
        "sizes": sizes,
        "device": device,
        "answer_fraction": ANSWER_FRACTION,
        "old": old,
        "new": new,
        "peak_ratio": new["peak_bytes"] / old["peak_bytes"] if old["peak_bytes"] > 0 else None,
        "time_ratio": new["seconds"] / old["seconds"],
        "loss_diff": abs(old["loss"] - new["loss"]),
    }


def run_loader(tiny: bool) -> dict[str, Any]:
    """Items/s of the LLaVA loading path (JPEG decode, pad, CLIP preprocessing to 336, tokenising) through a
    DataLoader with 0, 1, 4 and 8 workers on this machine's CPUs, from generated 640 x 480 JPEGs."""
    import os
    import tempfile

    try:
        from benchmarks.llava665k import sample_records
        from benchmarks.padding import images_per_second, write_images, write_records
        from vlmscale.data import LlavaDataset, load_tokenizer
        from vlmscale.models.vision import default_image_processor
    except ImportError as err:
        return {"status": "skipped", "reason": f"skipped: the data pipeline is not importable ({err})"}
    count, workers = (48, [0, 1]) if tiny else (512, [0, 1, 4, 8])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records = [r for r in sample_records(4 * count, seed=0) if r.image][:count]
        write_records(root / "data.json", records, write_images(root, 32, (640, 480)))
        tokenizer = load_tokenizer(None, os.environ.get("VLMSCALE_CACHE", tmp))
        dataset = LlavaDataset(
            root / "data.json", root, tokenizer, default_image_processor("clip", 336), check_images=False
        )
        rates = {str(w): images_per_second(dataset, list(range(len(dataset))), w, 16) for w in workers}
    return {
        "status": "ok",
        "cpus": os.cpu_count(),
        "items_per_s": rates,
        "per_worker": {w: r / max(int(w), 1) for w, r in rates.items()},
    }


def run_prefill(tiny: bool) -> dict[str, Any]:
    """Latency of prefill (tower + compressor + projector + question pass + LLM over the prompt, first token)
    at the smallest and the full T, next to the FLOPs ratio of `vlm.accounting` (paper's 2N(Q+T) and full)."""
    import torch

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    sizes = shape(tiny)
    text_len = sizes["prefill_text_len"]
    rows: dict[str, Any] = {}
    dtype = "bfloat16" if cuda else "float32"
    low, high = sizes["prefill_tokens"]
    vlm = build_model(sizes, high, dtype, device=device.type).eval()
    for tokens in (low, high):
        if tokens != vlm.visual_tokens:  # same tower and LLM, the connector rebuilt for this T
            vlm.connector = (
                build_quecc(vlm.vision, vlm.llm, tokens).to(device=device, dtype=vlm.llm.dtype).eval()
            )
        accounting = vlm.accounting(text_tokens=text_len - 1, query_tokens=sizes["query_len"])
        latency = {}
        for batch in sizes["prefill_batches"]:
            samples = random_batches(vlm, {**sizes, "text_len": text_len}, batch, seed=batch)
            inputs = {k: torch.stack([s[k] for s in samples]).to(device) for k in samples[0]}

            total = median_ms(partial(prefill_once, vlm, inputs, cuda), sizes["prefill_repeats"], cuda)
            encode = median_ms(partial(encode_once, vlm, inputs), sizes["prefill_repeats"], cuda)
            latency[str(batch)] = {
                "median_ms": total[0],
                "min_ms": total[1],
                # the image side alone (tower + question pass + connector): the same work at every T
                "images_median_ms": encode[0],
            }
        breakdown = accounting["flops_breakdown"]
        rows[str(tokens)] = {
            "latency": latency,
            "inference_flops": accounting["inference_flops"],
            "inference_flops_full": accounting["inference_flops_full"],
            "llm_flops": breakdown["llm"] + breakdown["llm_attention"],
        }
    low, high = str(low), str(high)

    speedup = {
        b: rows[high]["latency"][b]["median_ms"] / rows[low]["latency"][b]["median_ms"]
        for b in rows[low]["latency"]
    }
    return {
        "status": "ok",
        "text_tokens": text_len - 1,
        "query_tokens": sizes["query_len"],
        "per_T": rows,
        "speedup_by_batch": speedup,
        "flops_ratio_paper": rows[high]["inference_flops"] / rows[low]["inference_flops"],
        "flops_ratio_full": rows[high]["inference_flops_full"] / rows[low]["inference_flops_full"],
        "flops_ratio_llm": rows[high]["llm_flops"] / rows[low]["llm_flops"],  # the LLM over Q + T alone
        "dtype": dtype,
    }


def median_ms(fn, repeats: int, cuda: bool) -> tuple[float, float]:
    """(median, min) milliseconds of ``fn`` after two warm-up calls, synchronised on a GPU."""
    import torch

    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), 1e3 * min(times)


def encode_once(vlm, inputs: dict[str, Any]) -> None:
    """The image side of prefill alone: tower, question pass and connector."""
    import torch

    with torch.no_grad():
        vlm.encode_images(inputs["pixel_values"], inputs["query_ids"], inputs["query_attention_mask"])


def prefill_once(vlm, inputs: dict[str, Any], cuda: bool) -> None:
    """Prefill = what `generate` runs before its second token: one decoding step, synchronised."""
    import torch

    vlm.generate(
        inputs["pixel_values"],
        inputs["input_ids"],
        inputs["attention_mask"],
        inputs["query_ids"],
        inputs["query_attention_mask"],
        inputs["has_image"],
        max_new_tokens=1,
    )
    if cuda:
        torch.cuda.synchronize()


def run_pytest(limit: float) -> dict[str, Any]:
    """The gpu-marked tests (they skip without CUDA)."""
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=limit)
    lines = [line for line in proc.stdout.strip().splitlines() if line.strip()]
    summary = lines[-1] if lines else ""
    status = "ok" if proc.returncode in (0, 5) else "failed"  # 5: none collected
    return {"status": status, "returncode": proc.returncode, "summary": summary, "tail": proc.stdout[-3000:]}


def run_step(step: str, tiny: bool, limit: float, profile: bool = False) -> dict[str, Any]:
    if step == "prefill":
        return run_prefill(tiny)
    if step == "pytest_gpu":
        return run_pytest(limit)
    if step == "loss_memory":
        return run_loss_memory(tiny)
    if step == "loader":
        return run_loader(tiny)
    return run_train(step, tiny, profile)


# -- orchestration -----------------------------------------------------------------------------------------
def default_out() -> Path:
    out = os.environ.get("OUT")
    return Path(out) / "gpu-check.json" if out else REPO / "outputs" / "gpu-check.json"


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("lightning", "transformers", "deepspeed", "hydra", "PIL"):
        try:
            info[name] = __import__(name).__version__
        except Exception as err:  # a missing optional package is a fact to record, not a failure
            info[name] = f"not importable: {type(err).__name__}"
    info["cuda"] = torch.cuda.is_available()
    if info["cuda"]:
        info["device"] = torch.cuda.get_device_name()
        info["peak_tflops_bf16"] = peak_tflops(info["device"])
    return info


def summary_line(step: str, result: dict[str, Any]) -> str:
    if result.get("status") != "ok":
        return (
            f"{step}: {result.get('reason') or result.get('status') + ' ' + result.get('error', '')}".strip()
        )
    if step.startswith("train"):
        mem = result.get("peak_memory_gib", result.get("peak_rss_gib"))
        mfu = result.get("mfu")
        mfu_text = f"MFU {100 * mfu:.1f}% (6N-only {100 * result['mfu_6n']:.1f}%)" if mfu else "MFU n/a"
        syncs = f", {result['syncs_per_step']:.1f} syncs/step" if "syncs_per_step" in result else ""
        return (
            f"{step}: {result['tokens_per_s']:.0f} tokens/s, {result['step_seconds'] * 1e3:.1f} ms/step, "
            f"peak memory {mem:.2f} GiB, {mfu_text}, loss {result['loss_first']:.3f} -> {result['loss_last']:.3f}"
            f"{syncs}"
        )
    if step == "loss_memory":
        return (
            f"loss_memory ({result['device']}): answers-only / full logits peak {result['peak_ratio']:.3f}, "
            f"time {result['time_ratio']:.3f}, |loss diff| {result['loss_diff']:.1e}"
        )
    if step == "loader":
        rates = ", ".join(f"{w} workers {r:.0f}/s" for w, r in result["items_per_s"].items())
        return f"loader ({result['cpus']} CPUs): {rates}"
    if step == "prefill":
        speed = ", ".join(f"batch {b}: {s:.2f}x" for b, s in result["speedup_by_batch"].items())
        return (
            f"prefill: T=max/T=1 latency {speed}; FLOPs ratio {result['flops_ratio_full']:.2f}x full, "
            f"{result['flops_ratio_paper']:.2f}x paper 2N(Q+T)"
        )
    return f"{step}: {result['summary']}"


def orchestrate(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_out()
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "mode": "tiny" if args.tiny else "real",
        "environment": environment(),
        "shape": {k: v for k, v in shape(args.tiny).items()},
        "mfu_formula": (
            "3*B*(2*N_llm*L + 2*layers*d_attn*L^2) + 3*B*projector_flops + B*(vision_flops + query_pass_flops); "
            "N_llm = non-embedding params + vocab*hidden (LM head); MFU = that / step_time / peak bf16 FLOP/s"
        ),
        "steps": {},
    }
    deadline = time.monotonic() + args.budget
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    failures = 0
    for step in args.only or STEPS:
        cap = TINY_LIMIT if args.tiny else STEP_LIMITS[step]
        floor = 120 if step == "pytest_gpu" else 30  # the tests run last; they get at least this much
        limit = max(min(cap, deadline - time.monotonic()), floor)
        started = time.monotonic()
        if args.tiny and step.startswith("train_zero") and not report["environment"]["cuda"]:
            result = {"status": "skipped", "reason": "skipped: no CUDA (DeepSpeed needs a GPU)"}
        else:
            result = _run_worker(step, args.tiny, limit, out, env, args.profile)
        result["seconds"] = time.monotonic() - started
        report["steps"][step] = result
        failures += result.get("status") == "failed"
        print(summary_line(step, result), f"[{result['seconds']:.0f} s]", flush=True)
        out.write_text(json.dumps(report, indent=2, default=str))
    print(
        f"gpu-check: {len(report['steps']) - failures} of {len(report['steps'])} steps ok; numbers in {out}"
    )
    table = args.throughput or (None if args.tiny else default_out().with_name("throughput.json"))
    if table:
        write_throughput(report, out, Path(table))
    return 1 if failures else 0


def write_throughput(report: dict[str, Any], source: Path, table: Path) -> None:
    """The timed training steps as rows of the throughput table that python -m vlmscale.plan prices with."""
    from vlmscale.throughput import append_rows, rows_from_report

    rows = rows_from_report(report, source=str(source))
    append_rows(table, rows)
    print(f"gpu-check: {len(rows)} throughput rows in {table}")


def _run_worker(
    step: str, tiny: bool, limit: float, out: Path, env: dict[str, str], profile: bool = False
) -> dict[str, Any]:
    """One step in a fresh process (own CUDA context, own distributed state, killable when it hangs)."""
    with _temp_result(out, step) as result_path:
        cmd = [sys.executable, __file__, "--worker", step, "--result", str(result_path)]
        cmd += ["--tiny"] if tiny else []
        cmd += ["--profile"] if profile else []
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired as err:
            tail = _text(err.stdout or b"")[-2000:] + _text(err.stderr or b"")[-2000:]
            return {"status": "failed", "error": f"timed out after {limit:.0f} s", "log_tail": tail}
        if result_path.is_file():
            result = json.loads(result_path.read_text())
        else:
            result = {"status": "failed", "error": f"worker exited {proc.returncode} without a result"}
    if result.get("status") == "failed":
        result["log_tail"] = (proc.stdout + proc.stderr)[-4000:]
    return result


class _temp_result:
    """A per-step result file next to the report, removed afterwards."""

    def __init__(self, out: Path, step: str) -> None:
        self.path = out.parent / f".{out.stem}.{step}.{os.getpid()}.json"

    def __enter__(self) -> Path:
        self.path.unlink(missing_ok=True)
        return self.path

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)


def _text(data: bytes | str) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def worker(args: argparse.Namespace) -> int:
    import traceback

    import torch

    torch.manual_seed(0)
    if args.tiny:
        torch.set_num_threads(1)
    try:
        cap = TINY_LIMIT if args.tiny else STEP_LIMITS[args.worker]
        result = run_step(args.worker, args.tiny, cap - 10, args.profile)
    except Exception as err:
        traceback.print_exc()
        result = {"status": "failed", "error": f"{type(err).__name__}: {err}"[:2000]}
    Path(args.result).write_text(json.dumps(result, default=str))
    return 0


@command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny sizes on CPU (CI); DeepSpeed steps are skipped"
    )
    parser.add_argument(
        "--out", help="JSON report path (default $OUT/gpu-check.json or outputs/gpu-check.json)"
    )
    parser.add_argument("--only", nargs="+", choices=STEPS, help="run only these steps")
    parser.add_argument("--budget", type=float, default=290.0, help="seconds for all steps together (soft)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"training steps: {PROFILE_STEPS} more under torch.profiler, top ops",
    )
    parser.add_argument(
        "--throughput",
        help="append the timed steps as rows to this table (default: throughput.json beside the report; "
        "--tiny: none); merge into docs/gpu/throughput.json for python -m vlmscale.plan",
    )
    parser.add_argument(
        "--convert", metavar="REPORT", help="only turn an existing report into throughput rows"
    )
    parser.add_argument("--worker", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.convert:
        report = Path(args.convert)
        source = report.resolve().relative_to(REPO) if report.resolve().is_relative_to(REPO) else report
        write_throughput(json.loads(report.read_text()), source, Path(args.throughput or DEFAULT_TABLE))
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
