"""What one training process holds in GPU memory, and the cheapest way to run a model size on a job's GPUs.

    python -m vlmscale.memory --gpus 8 --gpu H100        # the table in docs/GPU.md (also --gpu-mem GIB)

Pure Python (no torch): Hydra resolves `trainer=auto` with it while composing a config (vlmscale/resolvers.py),
and `python -m vlmscale.plan` prices a sweep with it. Bytes per GPU, by term:

| term | DDP | DeepSpeed ZeRO-2 | ZeRO-3 |
|---|---|---|---|
| weights | trainable 4 B/param (fp32: the master copy is the parameter), frozen LLM 2 B (bf16), tower as configured (fp32: 4 B) | every parameter 2 B (the engine casts the module to bf16) | 2 B / W + the gathered working set (stage3_max_live_parameters + prefetch bucket, 2 B each) |
| gradients | trainable 4 B x 2 (`.grad` + DDP's bucket copy) | 2 B / W + the reduce/allgather buckets | 2 B / W + the reduce buckets |
| optimizer | Adam m, v: 8 B | fp32 master + m + v: 12 B / W | 12 B / W |

W is the number of GPUs; the bucket sizes are read from conf/trainer/deepspeed_zero{2,3}.yaml. The optimizer
step's temporaries (fp32 gradients of the partition, foreach Adam's scratch: 4 B per local trainable
parameter) come after the activations are freed, so the peak is the states plus the larger of the two.

Activations at micro-batch b over L = data.max_length - 1 + T LLM positions (a padded batch is as long as its
longest sample, so the bound is the data's maximum length), after Korthikanti et al. 2022 ("Reducing
Activation Recomputation in Large Transformer Models", sec. 4.1: s*b*h*(34 + 5*a*s/h) bytes per layer), adapted
to Qwen2 layers: no dropout masks, SDPA (flash / memory-efficient) attention keeps no s^2 scores, a SwiGLU MLP
of width i, RMSNorm saving its fp32 upcast. Bytes per token per layer:

    trainable LLM (finetune):  20h + 4h_kv + 8i    norms 2 x 8h (fp32 input, bf16 normed), q 2h, k/v 2h_kv
                                                   each, attention output 2h, MLP gate/SiLU/up/product 4 x 2i
    frozen LLM (pretrain):     12h + 4h_kv + 6i    no weight gradients: linear inputs and normed copies unsaved
    gradient checkpointing:    2h per layer + one layer as above (HF recomputes one decoder layer at a time)

(measured on CPU with torch's saved-tensor hooks for Qwen2 layers of three shapes: exactly these coefficients
plus ~0.5 KB per token per layer; tests/test_memory.py repeats the measurement). Plus per token: 10h (embedding
output, final norm, LM-head input) and 12V for the loss (HF's cross-entropy: the fp32 log-softmax it keeps,
then its gradient and that gradient's input at the start of backward), and per image the connector's
features (rough: (2m + 24c) x grid^2 bytes, under 2% of the total at the grid's shapes). The frozen tower runs
before the LLM without gradients: all its hidden states (output_hidden_states) and one MLP intermediate, in its
dtype, at its own moment, so it counts only when larger than the LLM's activations.

Fitting: allocated bytes <= (GPU memory - 1 GiB CUDA context) / 1.25: the H200 GPU check measured reserved /
allocated = 1.23 (DDP), 1.15 (ZeRO-2), 1.12 (ZeRO-3) (docs/gpu/gpu-check-h200.json); this model predicts its
three measured peaks within 10% (tests/test_memory.py).

The choice (`choose`): strategies in throughput order DDP, ZeRO-2, ZeRO-3 (measured on one H200: 36.6k,
27.7k, 10.7k tokens/s; docs/GPU.md); within one, without gradient checkpointing first, then with it (about a
third more compute, cheaper than the next strategy); the largest micro-batch that fits, from the global
batch's per-GPU share down to 1, with gradient accumulation making up the global batch exactly. A finetune
under DDP trains fp32 weights (llm.dtype=float32): without DeepSpeed there is no other fp32 master copy.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

GiB = 2**30
CUDA_CONTEXT_GIB = 1.0
FRAGMENTATION = 1.25  # reserved / allocated, measured up to 1.23 on the H200 (module docstring)
STRATEGIES = ("ddp", "zero2", "zero3")  # cheapest first
TRAINER_OF = {"ddp": "gpu", "zero2": "deepspeed_zero2", "zero3": "deepspeed_zero3"}  # conf/trainer/<name>
ADAM_BYTES = 8  # m and v in fp32
MASTER_BYTES = 4  # DeepSpeed's fp32 copy of a bf16 parameter
LOSS_BYTES_PER_VOCAB = 12  # per token per vocabulary entry, see the module docstring

# Device memory as nvidia-smi reports it (MiB / 1024): an "80 GB" H100 holds 81559 MiB.
GPU_MEMORY_GIB = {"H100": 79.6, "H200": 140.4, "A100-80GB": 80.0, "A100-40GB": 40.0}

# config.json of the published checkpoints the conf/ groups name, so a plan needs no download. A local folder
# is read from its own config.json; a tiny or *-random group carries its config.
PUBLISHED_CONFIGS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen1.5-0.5B": {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 24,
                          "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 151936,
                          "tie_word_embeddings": True},
    "Qwen/Qwen1.5-1.8B": {"hidden_size": 2048, "intermediate_size": 5504, "num_hidden_layers": 24,
                          "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 151936,
                          "tie_word_embeddings": False},
    "Qwen/Qwen1.5-4B": {"hidden_size": 2560, "intermediate_size": 6912, "num_hidden_layers": 40,
                        "num_attention_heads": 20, "num_key_value_heads": 20, "vocab_size": 151936,
                        "tie_word_embeddings": False},
    "Qwen/Qwen1.5-7B": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                        "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 151936,
                        "tie_word_embeddings": False},
    "Qwen/Qwen1.5-14B": {"hidden_size": 5120, "intermediate_size": 13696, "num_hidden_layers": 40,
                         "num_attention_heads": 40, "num_key_value_heads": 40, "vocab_size": 152064,
                         "tie_word_embeddings": False},
    "openai/clip-vit-large-patch14-336": {"model_type": "clip_vision_model", "hidden_size": 1024,
                                          "intermediate_size": 4096, "num_hidden_layers": 24,
                                          "num_attention_heads": 16, "image_size": 336, "patch_size": 14},
    "google/siglip-so400m-patch14-384": {"model_type": "siglip_vision_model", "hidden_size": 1152,
                                         "intermediate_size": 4304, "num_hidden_layers": 27,
                                         "num_attention_heads": 16, "image_size": 384, "patch_size": 14},
}  # fmt: skip


# -- shapes -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LLMShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool

    @property
    def kv_width(self) -> int:
        return self.kv_heads * (self.hidden // self.heads)

    @property
    def layer_params(self) -> int:
        """q, k, v (with biases, as Qwen2), o, gate, up, down, two RMSNorms."""
        h, kv = self.hidden, self.kv_width
        attention = h * h + 2 * h * kv + (h + 2 * kv) + h * h
        return attention + 3 * h * self.intermediate + 2 * h

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def non_embedding_params(self) -> int:
        return self.layers * self.layer_params + self.hidden  # + the final norm

    @property
    def params(self) -> int:
        return self.non_embedding_params + self.embedding_params


@dataclass(frozen=True)
class VisionShape:
    hidden: int
    intermediate: int
    layers: int
    image_size: int
    patch_size: int
    channels: int = 3
    cls_token: bool = True  # CLIP prepends one; SigLIP has none

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def positions(self) -> int:
        return self.grid**2 + int(self.cls_token)

    @property
    def params(self) -> int:
        h = self.hidden
        layer = 4 * h * h + 4 * h + 2 * h * self.intermediate + self.intermediate + h + 4 * h  # + 2 norms
        embeddings = self.channels * self.patch_size**2 * h + self.positions * h + int(self.cls_token) * h
        return self.layers * layer + embeddings + 4 * h  # + pre/post norms


def _config_of(group: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A model group's architecture: its own `config`, a local folder's config.json, or the published one."""
    if group.get("config"):
        return dict(group["config"])
    source = group.get("pretrained")
    if source and (Path(str(source)) / "config.json").is_file():
        config = json.loads((Path(str(source)) / "config.json").read_text())
        return dict(config.get("vision_config") or config)
    if source in PUBLISHED_CONFIGS:
        return dict(PUBLISHED_CONFIGS[source])
    raise ValueError(
        f"{what}={group.get('name')}: its architecture is unknown here (pretrained={source!r} is neither a local "
        f"folder with config.json nor one of {sorted(PUBLISHED_CONFIGS)}); add it to "
        "vlmscale.memory.PUBLISHED_CONFIGS, or choose the trainer yourself (trainer=gpu, deepspeed_zero2/3)"
    )


def llm_shape(llm: Mapping[str, Any], vocab: int | None = None) -> LLMShape:
    """From an `llm` group (`vocab`: the tokenizer's length when known; build_vlm resizes to it)."""
    c = _config_of(llm, "llm")
    heads = int(c["num_attention_heads"])
    return LLMShape(
        hidden=int(c["hidden_size"]),
        intermediate=int(c["intermediate_size"]),
        layers=int(c["num_hidden_layers"]),
        heads=heads,
        kv_heads=int(c.get("num_key_value_heads") or heads),
        vocab=int(vocab or c["vocab_size"]),
        tied=bool(c.get("tie_word_embeddings", False)),
    )


def vision_shape(vision: Mapping[str, Any]) -> VisionShape:
    c = _config_of(vision, "vision")
    return VisionShape(
        hidden=int(c["hidden_size"]),
        intermediate=int(c["intermediate_size"]),
        layers=int(c["num_hidden_layers"]),
        image_size=int(c["image_size"]),
        patch_size=int(c["patch_size"]),
        channels=int(c.get("num_channels", 3)),
        cls_token=not str(c.get("model_type", "clip")).startswith("siglip"),
    )


def connector_params(
    compressor: Mapping[str, Any] | None,
    projector: Mapping[str, Any],
    vision: VisionShape,
    multilevel_layers: int,
    llm_hidden: int,
    visual_tokens: int,
) -> int:
    """Parameters of compressor + projector (models/quecc.py, compressors.py, projectors.py); a compressor
    this does not know counts 0 (its weights are small next to any LLM here)."""
    c, m, d = vision.hidden, vision.hidden * multilevel_layers, llm_hidden
    kind = (compressor or {}).get("type") or (compressor or {}).get("name") or "none"
    total = 0
    if kind in ("quecc", "quecc_noquery"):
        kernel = vision.grid // math.isqrt(int(visual_tokens))
        use_query = kind == "quecc" and (compressor or {}).get("use_query", True)
        total += (d * c + 3 * c) if use_query else 0  # question -> vision width, LayerNorm
        total += 8 * c * c + 2 * m * c + c * kernel**2 + 16 * c  # q/k/v MLPs, depthwise conv, attention
    name = projector["name"]
    if name == "linear":
        total += c * d + d
    elif name.startswith("mlp") and name.endswith("x_gelu"):
        depth = int(name[3:-6])
        total += c * d + d + (depth - 1) * (d * d + d)
    return total


# -- the job ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """What one training process's memory depends on."""

    llm: LLMShape
    vision: VisionShape
    connector_params: int
    multilevel_width: int
    stage: str  # pretrain: the connector trains | finetune: connector + LLM
    positions: int  # LLM positions per sample, worst case: data.max_length - 1 + T
    gpus: int  # W, data-parallel processes
    gpu_memory_gib: float
    global_batch: int
    vision_bytes: int = 4  # the tower's parameter dtype under DDP (conf: float32)
    deepspeed: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def trainable_params(self) -> int:
        return self.connector_params + (self.llm.params if self.stage == "finetune" else 0)

    @property
    def frozen_llm_params(self) -> int:
        return 0 if self.stage == "finetune" else self.llm.params

    @property
    def budget_bytes(self) -> float:
        return (self.gpu_memory_gib - CUDA_CONTEXT_GIB) * GiB / FRAGMENTATION


def deepspeed_settings() -> dict[str, dict[str, float]]:
    """Bucket sizes (elements) of the project's DeepSpeed configs, conf/trainer/deepspeed_zero{2,3}.yaml."""
    from vlmscale.assemble import group_config

    zero2 = group_config("trainer", "deepspeed_zero2")["strategy"]
    zero3 = group_config("trainer", "deepspeed_zero3")["strategy"]["config"]["zero_optimization"]
    return {
        "zero2": {
            "reduce": float(zero2["reduce_bucket_size"]),
            "allgather": float(zero2["allgather_bucket_size"]),
        },
        "zero3": {
            "reduce": float(zero3["reduce_bucket_size"]),
            "prefetch": float(zero3["stage3_prefetch_bucket_size"]),
            "live": float(zero3["stage3_max_live_parameters"]),
        },
    }


def llm_layer_bytes(llm: LLMShape, trainable: bool) -> int:
    """Activation bytes one decoder layer keeps per token for backward (module docstring)."""
    h, kv, i = llm.hidden, llm.kv_width, llm.intermediate
    return 20 * h + 4 * kv + 8 * i if trainable else 12 * h + 4 * kv + 6 * i


def memory_terms(job: Job, strategy: str, micro_batch: int, checkpointing: bool) -> dict[str, float]:
    """Bytes per GPU of each term; `peak` is what must fit (see the module docstring)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r}: one of {STRATEGIES}")
    w = job.gpus
    trainable, frozen_llm, tower = job.trainable_params, job.frozen_llm_params, job.vision.params
    ds = job.deepspeed or deepspeed_settings()
    if strategy == "ddp":
        weights = 4 * trainable + 2 * frozen_llm + job.vision_bytes * tower
        grads = 2 * 4 * trainable
        optimizer = ADAM_BYTES * trainable
        step = 4 * trainable
    else:
        every = trainable + frozen_llm + tower
        optimizer = (MASTER_BYTES + ADAM_BYTES) * trainable / w
        step = 4 * trainable / w
        if strategy == "zero2":
            weights = 2 * every
            grads = 2 * trainable / w + 2 * (2 * ds["zero2"]["reduce"] + ds["zero2"]["allgather"])
        else:
            weights = 2 * every / w + 2 * (min(ds["zero3"]["live"], every) + ds["zero3"]["prefetch"])
            grads = 2 * trainable / w + 2 * 2 * ds["zero3"]["reduce"]

    llm, tokens = job.llm, micro_batch * job.positions
    trainable_llm = job.stage == "finetune"
    if checkpointing:
        per_token = llm.layers * 2 * llm.hidden + llm_layer_bytes(llm, trainable_llm)
    else:
        per_token = llm.layers * llm_layer_bytes(llm, trainable_llm)
    activations = tokens * (per_token + 10 * llm.hidden)
    loss = tokens * LOSS_BYTES_PER_VOCAB * llm.vocab
    v = job.vision
    connector = micro_batch * v.grid**2 * (2 * job.multilevel_width + 24 * v.hidden)
    tower_bytes = job.vision_bytes if strategy == "ddp" else 2
    tower_pass = micro_batch * v.positions * tower_bytes * ((v.layers + 1) * v.hidden + v.intermediate)
    states = weights + grads + optimizer
    peak = states + max(activations + loss + connector, tower_pass, step)
    return {
        "weights": weights,
        "gradients": grads,
        "optimizer": optimizer,
        "activations": activations,
        "loss": loss,
        "connector": connector,
        "tower_pass": tower_pass,
        "optimizer_step": step,
        "peak": peak,
    }


def micro_batch_options(global_batch: int, gpus: int) -> list[int]:
    """Per-GPU micro-batches that keep `global_batch` exactly (micro x accumulation x GPUs), largest first."""
    if global_batch < gpus or global_batch % gpus:
        raise ValueError(
            f"global_batch={global_batch} does not split over {gpus} GPUs; use a multiple of {gpus}"
        )
    share = global_batch // gpus
    return [m for m in range(share, 0, -1) if share % m == 0]


@dataclass(frozen=True)
class Choice:
    strategy: str
    micro_batch: int
    accumulate: int
    checkpointing: bool
    fits: bool
    terms: Mapping[str, float] = field(hash=False, compare=False)
    budget: float = 0.0

    @property
    def trainer(self) -> str:
        return TRAINER_OF[self.strategy]

    @property
    def peak_gib(self) -> float:
        return self.terms["peak"] / GiB


def choose(
    job: Job,
    strategies: Sequence[str] = STRATEGIES,
    checkpointing: Sequence[bool] = (False, True),
    micro_batches: Sequence[int] | None = None,
) -> Choice:
    """The cheapest (strategy, checkpointing, micro-batch) that fits, in the order of the module docstring;
    when nothing does, the last one tried with fits=False. The arguments narrow the search (pinned keys)."""
    budget = job.budget_bytes
    micros = list(micro_batches or micro_batch_options(job.global_batch, job.gpus))
    choice = None
    for strategy in strategies:
        for ckpt in checkpointing:
            for micro in micros:
                terms = memory_terms(job, strategy, micro, ckpt)
                accumulate = job.global_batch // (job.gpus * micro)
                choice = Choice(strategy, micro, accumulate, ckpt, terms["peak"] <= budget, terms, budget)
                if choice.fits:
                    return choice
    assert choice is not None, "nothing to choose from"
    return choice


# -- from a config ------------------------------------------------------------------------------------------
def gpu_memory_gib(cluster: Mapping[str, Any]) -> float:
    if cluster.get("gpu_memory_gib"):
        return float(cluster["gpu_memory_gib"])
    kind = cluster.get("gpu")
    if kind not in GPU_MEMORY_GIB:
        raise ValueError(
            f"cluster.gpu={kind!r}: trainer=auto needs the GPU's memory; set cluster.gpu to one of "
            f"{sorted(GPU_MEMORY_GIB)} or cluster.gpu_memory_gib=<GiB per GPU>"
        )
    return GPU_MEMORY_GIB[kind]


def job_from_config(cfg: Mapping[str, Any], global_batch: int | None = None, vocab: int | None = None) -> Job:
    """The Job of a composed training config (plain or OmegaConf). Reads only what the choice depends on, never
    the keys `trainer=auto` sets (trainer.strategy, loader.batch_size, llm.dtype, gradient_checkpointing)."""
    llm, vision = cfg["llm"], cfg["vision"]
    cluster = cfg.get("cluster") or {}
    gpus = int(cluster.get("nodes") or 1) * int(cluster.get("devices_per_node") or 1)
    global_batch = global_batch or cfg.get("global_batch")
    if not global_batch:
        raise ValueError(
            "trainer=auto chooses the micro-batch within `global_batch` (the optimiser batch over all GPUs, "
            "e.g. global_batch=128); set it, or set loader.batch_size and trainer.accumulate_grad_batches"
        )
    shape = vision_shape(vision)
    multilevel = len(vision.get("multilevel_layers") or [])
    t = int(cfg["visual_tokens"])
    llm_dims = llm_shape(llm, vocab)
    return Job(
        llm=llm_dims,
        vision=shape,
        connector_params=connector_params(
            cfg.get("compressor"), cfg["projector"], shape, multilevel, llm_dims.hidden, t
        ),
        multilevel_width=shape.hidden * multilevel,
        stage=str(cfg["stage"]),
        positions=int(cfg["data"]["max_length"]) - 1 + t,
        gpus=gpus,
        gpu_memory_gib=gpu_memory_gib(cluster),
        global_batch=int(global_batch),
        vision_bytes=2 if vision.get("dtype") in ("bfloat16", "float16") else 4,
    )


@lru_cache(maxsize=256)
def _choose_cached(
    job: Job, strategies: tuple[str, ...], checkpointing: tuple[bool, ...], micros: tuple[int, ...] | None
) -> Choice:
    return choose(job, strategies, checkpointing, micros)


def auto_settings(cfg: Mapping[str, Any], pinned: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config values `trainer=auto` stands for: the Lightning strategy (a node with `_target_`), the
    micro-batch (loader.batch_size), gradient accumulation, gradient checkpointing and the LLM's dtype.
    `pinned` holds the keys the config set itself (vlmscale/resolvers.py): the choice keeps them. Raises
    ValueError when nothing fits, naming the GPUs and what was tried."""
    from vlmscale.assemble import group_config

    pinned = dict(pinned or {})
    cluster = cfg.get("cluster") or {}
    gpus = int(cluster.get("nodes") or 1) * int(cluster.get("devices_per_node") or 1)
    micro, accumulate = pinned.get("micro_batch"), pinned.get("accumulate_grad_batches")
    global_batch = None
    if micro is not None and accumulate is not None:
        global_batch = int(micro) * int(accumulate) * gpus
    job = job_from_config(cfg, global_batch)
    if micro is None and accumulate is not None:
        if job.global_batch % (gpus * int(accumulate)):
            raise ValueError(
                f"global_batch={job.global_batch} is not {gpus} GPUs x trainer.accumulate_grad_batches="
                f"{accumulate} x a micro-batch"
            )
        micro = job.global_batch // (gpus * int(accumulate))
    strategies = (pinned["strategy"],) if "strategy" in pinned else STRATEGIES
    ckpt = (bool(pinned["gradient_checkpointing"]),) if "gradient_checkpointing" in pinned else (False, True)
    micros = (int(micro),) if micro is not None else None
    if micros and job.global_batch % (gpus * micros[0]):
        raise ValueError(
            f"loader.batch_size={micros[0]} on {gpus} GPUs does not divide global_batch={job.global_batch}"
        )
    choice = _choose_cached(job, strategies, ckpt, micros)
    if not choice.fits:
        fixed = ", ".join(f"{k}={v}" for k, v in sorted(pinned.items())) or "nothing pinned"
        raise ValueError(
            f"llm={cfg['llm'].get('name')} T={cfg['visual_tokens']} stage={job.stage} does not fit "
            f"{job.gpus} x {job.gpu_memory_gib:g} GiB: the best try ({choice.strategy}, micro-batch "
            f"{choice.micro_batch}, gradient checkpointing {choice.checkpointing}; {fixed}) needs "
            f"{choice.peak_gib:.1f} GiB of {choice.budget / GiB:.1f} usable (python -m vlmscale.memory); use "
            "more GPUs (cluster.nodes), a shorter data.max_length, or another trainer="
        )
    if choice.strategy == "ddp":
        strategy: dict[str, Any] = {"_target_": "lightning.pytorch.strategies.DDPStrategy"}
    else:
        strategy = group_config("trainer", choice.trainer)["strategy"]
    return {
        "strategy": strategy,
        "micro_batch": choice.micro_batch,
        "accumulate_grad_batches": choice.accumulate,
        "gradient_checkpointing": choice.checkpointing,
        # A DDP finetune trains fp32 weights (its only master copy); else bf16 (DeepSpeed keeps the master).
        "llm_dtype": "float32" if choice.strategy == "ddp" and job.stage == "finetune" else "bfloat16",
        "choice": choice,
    }


# -- the table (docs/GPU.md) --------------------------------------------------------------------------------
GRID_SIZES = ("qwen1.5-0.5b", "qwen1.5-1.8b", "qwen1.5-4b", "qwen1.5-7b", "qwen1.5-14b")
LLAVA_GLOBAL_BATCH = {"pretrain": 256, "finetune": 128}  # LLaVA-1.5: 32 x 8 and 16 x 8 GPUs


def grid_job(llm_name: str, stage: str, visual_tokens: int, gpus: int, gpu_mem: float) -> Job:
    """The paper grid's Job for one point (conf/llm/<name>.yaml, CLIP ViT-L/336, QueCC + mlp2x_gelu)."""
    from vlmscale.assemble import group_config

    data = group_config("data", "llava_pretrain" if stage == "pretrain" else "llava_finetune")
    cfg = {
        "llm": group_config("llm", llm_name),
        "vision": group_config("vision", "clip-vit-l-336"),
        "compressor": group_config("compressor", "quecc"),
        "projector": group_config("projector", "mlp2x_gelu"),
        "visual_tokens": visual_tokens,
        "stage": stage,
        "data": data,
        "global_batch": LLAVA_GLOBAL_BATCH[stage],
        "cluster": {"nodes": 1, "devices_per_node": gpus, "gpu_memory_gib": gpu_mem},
    }
    return job_from_config(cfg)


def table(gpus: int, gpu_mem: float, visual_tokens: int = 576) -> str:
    lines = [
        f"{gpus} x {gpu_mem:g} GiB, T={visual_tokens}, LLaVA global batch, positions = data.max_length - 1 + T "
        f"(usable {((gpu_mem - CUDA_CONTEXT_GIB) / FRAGMENTATION):.1f} GiB per GPU after context and fragmentation)",
        "",
        "| LLM | params | stage | strategy | micro x accum | ckpt | weights | grads | optimizer | activations+loss | peak GiB |",
        "|---|---:|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in GRID_SIZES:
        for stage in ("pretrain", "finetune"):
            job = grid_job(name, stage, visual_tokens, gpus, gpu_mem)
            c = choose(job)
            t = c.terms
            gib = {k: v / GiB for k, v in t.items()}
            strategy = c.strategy if c.fits else f"none fits ({c.strategy})"
            lines.append(
                f"| {name} | {job.llm.params / 1e9:.2f}B | {stage} | {strategy} | {c.micro_batch} x {c.accumulate} "
                f"| {'yes' if c.checkpointing else 'no'} | {gib['weights']:.1f} | {gib['gradients']:.1f} "
                f"| {gib['optimizer']:.1f} | {gib['activations'] + gib['loss'] + gib['connector']:.1f} "
                f"| {gib['peak']:.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpus", type=int, default=8, help="GPUs of the job (data-parallel processes)")
    parser.add_argument("--gpu", choices=sorted(GPU_MEMORY_GIB), help="GPU kind (its memory)")
    parser.add_argument("--gpu-mem", type=float, help="GiB per GPU (instead of --gpu)")
    parser.add_argument("--visual-tokens", type=int, default=576, help="T (default: the grid's largest)")
    parser.add_argument("--json", action="store_true", help="the choices as JSON lines")
    args = parser.parse_args(argv)
    try:
        if (args.gpu is None) == (args.gpu_mem is None):
            raise ValueError("give exactly one of --gpu KIND or --gpu-mem GIB")
        mem = args.gpu_mem if args.gpu_mem is not None else GPU_MEMORY_GIB[args.gpu]
        if mem <= CUDA_CONTEXT_GIB or args.gpus < 1:
            raise ValueError("--gpu-mem must exceed 1 GiB and --gpus be at least 1")
        if args.json:
            for name in GRID_SIZES:
                for stage in ("pretrain", "finetune"):
                    c = choose(grid_job(name, stage, args.visual_tokens, args.gpus, mem))
                    row = {k: v for k, v in asdict(c).items() if k != "terms"}
                    print(json.dumps({"llm": name, "stage": stage, **row, "peak_gib": c.peak_gib}))
        else:
            print(table(args.gpus, mem, args.visual_tokens))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "Choice",
    "Job",
    "LLMShape",
    "VisionShape",
    "auto_settings",
    "choose",
    "connector_params",
    "job_from_config",
    "llm_shape",
    "memory_terms",
    "micro_batch_options",
    "vision_shape",
]

if __name__ == "__main__":
    sys.exit(main())
