"""Lightning wrappers: the module owns optimisation, training stages and logging; the data module owns
loaders. Architecture lives in `vlmscale.models` (plain nn.Modules), data in `vlmscale.data`.

Stages (LLaVA's recipe):
- `pretrain`: vision tower and LLM frozen; the compressor + projector learn to speak the LLM's language (lr 1e-3).
- `finetune`: projector + LLM train (lr 2e-5), the projector initialised from a pretrain checkpoint.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vlmscale.data import stop_token_ids
from vlmscale.eval.runner import decode
from vlmscale.eval.scorers import exact_match

STAGES = ("pretrain", "finetune")


@dataclass
class OptimConfig:
    lr: float = 1e-3
    projector_lr: float | None = None  # LLaVA-1.5 finetune can give the projector its own lr
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.0


@dataclass
class EvalConfig:
    max_new_tokens: int = 8
    generate: bool = True  # greedy-decode answers in validation for exact-match accuracy


def trainable_parts(stage: str) -> tuple[str, ...]:
    if stage == "pretrain":
        return ("projector",)
    if stage == "finetune":
        return ("projector", "llm")
    raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES} (config key `stage`)")


class VLMLightningModule(L.LightningModule):
    """Trains a `VisionLanguageModel` for one stage; validation reports loss and exact-match accuracy per
    question category (greedy decoding with the KV cache). Final scores come from `vlmscale.eval`."""

    def __init__(
        self,
        vlm: torch.nn.Module,
        tokenizer: Any,
        stage: str = "pretrain",
        optim: OptimConfig | Mapping[str, Any] | None = None,
        eval: EvalConfig | Mapping[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        reloadable_parts: tuple[str, ...] = (),
        config_hash: str | None = None,
    ) -> None:
        super().__init__()
        self.reloadable_parts = tuple(reloadable_parts)
        self.config_hash = config_hash  # stamped into checkpoints, so a resume can refuse a foreign one
        self.vlm = vlm
        self.tokenizer = tokenizer
        self.stage = stage
        self.optim = optim if isinstance(optim, OptimConfig) else OptimConfig(**(optim or {}))
        self.eval_cfg = eval if isinstance(eval, EvalConfig) else EvalConfig(**(eval or {}))
        # The tower trains only when its config says freeze=false (as built); stages decide the rest.
        tower_trains = any(p.requires_grad for p in vlm.vision.parameters())
        self._set_trainable(trainable_parts(stage) + (("vision",) if tower_trains else ()))
        if gradient_checkpointing:
            self.vlm.llm.model.gradient_checkpointing_enable()
        self._eval_counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self._stop_ids = stop_token_ids(tokenizer)  # eos and end-of-turn (e.g. <|im_end|>), as in eval
        self.last_validated_step = -1

    # -- what trains -------------------------------------------------------------------------------
    def _set_trainable(self, parts: tuple[str, ...]) -> None:
        for name in ("vision", "projector", "llm"):
            module = getattr(self.vlm, name)
            module.requires_grad_(name in parts)
        # A frozen tower still sits in eval mode so dropout/batch-norm statistics never move.
        if "vision" not in parts:
            self.vlm.vision.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and not any(p.requires_grad for p in self.vlm.vision.parameters()):
            self.vlm.vision.eval()
        return self

    # -- steps -------------------------------------------------------------------------------------
    def _forward(self, batch: Mapping[str, Any]):
        return self.vlm(
            pixel_values=batch["pixel_values"],
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
            query_ids=batch.get("query_ids"),
            query_attention_mask=batch.get("query_attention_mask"),
            has_image=batch.get("has_image"),
        )

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._forward(batch).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {loss.item()} at step {self.global_step}; lower optim.lr, enable "
                "trainer.gradient_clip_val, or use 32-bit precision (trainer.precision=32-true)"
            )
        bs = batch["input_ids"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        bs = batch["input_ids"].shape[0]
        loss = self._forward(batch).loss
        self.log("val/loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)
        if not self.eval_cfg.generate:
            return
        predictions = self.generate_answers(batch)
        for pred, ref, cat in zip(predictions, batch["answers"], batch["categories"]):
            counts = self._eval_counts[cat or "all"]
            counts[0] += int(exact_match(pred, ref))
            counts[1] += 1

    @torch.no_grad()
    def generate_answers(self, batch: Mapping[str, Any]) -> list[str]:
        tokens = self.vlm.generate(
            pixel_values=batch["pixel_values"],
            prompt_ids=batch["prompt_ids"],
            prompt_attention_mask=batch["prompt_attention_mask"],
            query_ids=batch.get("query_ids"),
            query_attention_mask=batch.get("query_attention_mask"),
            has_image=batch.get("has_image"),
            max_new_tokens=self.eval_cfg.max_new_tokens,
        )
        return decode(tokens, self.tokenizer, self._stop_ids)

    def on_validation_epoch_start(self) -> None:
        self._eval_counts.clear()

    def on_validation_epoch_end(self) -> None:
        # error/avg is the mean of the category errors, as in vlmscale.eval (categories weigh equally).
        errors = {cat: 1.0 - correct / total for cat, (correct, total) in self._eval_counts.items()}
        for cat, error in sorted(errors.items()):
            self.log(f"val/error/{cat}", error, sync_dist=True)
            self.log(f"val/n/{cat}", float(self._eval_counts[cat][1]), sync_dist=True)
        if errors:
            self.log("val/error/avg", sum(errors.values()) / len(errors), prog_bar=True, sync_dist=True)
        self._eval_counts.clear()
        self.last_validated_step = self.global_step

    # -- optimisation ------------------------------------------------------------------------------
    def make_optimizer(self, total_steps: int):
        """AdamW (projector may have its own lr) with linear warmup then cosine decay over `total_steps`."""
        cfg = self.optim
        groups = []
        projector_params = [p for p in self.vlm.projector.parameters() if p.requires_grad]
        other_params = [
            p for n, p in self.vlm.named_parameters() if p.requires_grad and not n.startswith("projector.")
        ]
        if projector_params:
            groups.append({"params": projector_params, "lr": cfg.projector_lr or cfg.lr, "name": "projector"})
        if other_params:
            groups.append({"params": other_params, "lr": cfg.lr, "name": "llm"})
        if not groups:
            raise ValueError(f"stage {self.stage!r} leaves nothing to train")
        optimizer = torch.optim.AdamW(groups, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        total = max(int(total_steps), 1)
        warmup = int(math.ceil(cfg.warmup_ratio * total))
        schedule = partial(_warmup_cosine, warmup=warmup, total=total, floor=cfg.min_lr_ratio)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    def configure_optimizers(self):
        optimizer, scheduler = self.make_optimizer(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_model(self) -> None:
        """Under ZeRO-3 (called before DeepSpeed wraps the model): QueCC's attention reads its k/v projection
        weights directly rather than through their forward, so DeepSpeed must gather the block as one leaf, or
        it hands those weights over as empty partitions."""
        if not getattr(self.trainer.strategy, "zero_stage_3", False):
            return
        from deepspeed.utils import set_z3_leaf_modules

        from vlmscale.models.quecc import LocalCrossAttention

        if any(isinstance(m, LocalCrossAttention) for m in self.vlm.modules()):
            set_z3_leaf_modules(self.vlm, [LocalCrossAttention])

    # Frozen weights that are loaded by name again (pretrained LLM / tower) stay out of checkpoints;
    # randomly initialised tiny parts must be kept, or a resumed run would rebuild different weights.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # From state_dict, not named_parameters: a tied lm_head shares the embedding tensor and is listed once
        # by named_parameters, but stored under both names.
        frozen = {
            key
            for part in self.reloadable_parts
            for key, value in getattr(self.vlm, part)
            .state_dict(prefix=f"vlm.{part}.", keep_vars=True)
            .items()
            if not value.requires_grad
        }
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}
        checkpoint["vlmscale_stage"] = self.stage
        checkpoint["vlmscale_config_hash"] = self.config_hash

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "state_dict" not in checkpoint:
            return  # a DeepSpeed checkpoint folder: the engine restores the weights itself
        # Restore what the checkpoint holds; parts left out of it stay as built.
        current = self.state_dict()
        current.update(checkpoint["state_dict"])
        checkpoint["state_dict"] = current


def _warmup_cosine(step: int, warmup: int, total: int, floor: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def init_from_checkpoint(vlm: torch.nn.Module, ckpt_path: str | Path) -> list[str]:
    """Stage hand-over: copy what a (pretrain) checkpoint holds of `vlm` — always the projector (compressor +
    MLP), and the LLM / tower too when they were randomly initialised and so stored — into `vlm`.

    Loaded with `weights_only=True`: a checkpoint is data, never code."""
    path = Path(ckpt_path)
    if path.is_dir():
        raise ValueError(
            f"{path} is a DeepSpeed (sharded) checkpoint folder; convert it first with "
            "lightning.pytorch.utilities.deepspeed.convert_zero_checkpoint_to_fp32_state_dict and pass the file"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} not found; set init_from=<pretrain run dir>/checkpoints/last.ckpt"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    loaded = []
    for part in ("vision", "projector", "llm"):
        prefix = f"vlm.{part}."
        part_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if part_state:
            getattr(vlm, part).load_state_dict(part_state, strict=True)
            loaded.append(part)
    if "projector" not in loaded:
        raise ValueError(f"{path} holds no projector weights (keys starting with 'vlm.projector.')")
    return loaded


class StepIndexedSampler(Sampler[int]):
    """An endless, seeded shuffle whose i-th index depends only on (seed, i), dealt round-robin to ranks.

    Training is counted in optimiser steps, so a run resumed at global step s starts the stream at
    s * batch_size * accumulation * world_size and sees exactly the batches an uninterrupted run would have
    seen, with no loader state to save (and no off-by-one from Lightning's one-batch prefetch). Rank r of w
    takes positions start + r, start + r + w, ...: together the ranks consume the single-process stream."""

    def __init__(
        self, num_samples: int, seed: int = 0, start: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if num_samples <= 0:
            raise ValueError("the training split is empty; check the data config (data.*) and its paths")
        self.num_samples = num_samples
        self.seed = seed
        self.start = start
        self.rank = rank
        self.world_size = world_size

    def _permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_samples, generator=g).tolist()

    def __iter__(self):
        position = self.start + self.rank
        epoch, perm = -1, []
        while True:
            if position // self.num_samples != epoch:
                epoch = position // self.num_samples
                perm = self._permutation(epoch)
            yield perm[position % self.num_samples]
            position += self.world_size


class VLMDataModule(L.LightningDataModule):
    """Loaders over already-built datasets (see `vlmscale.data.build_datasets`)."""

    def __init__(
        self,
        datasets: Mapping[str, Dataset],
        collate_fn,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.datasets = dict(datasets)
        self.collate_fn = collate_fn
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed

    def _loader(self, split: str, batch_size: int, sampler: Sampler | None = None) -> DataLoader:
        if split not in self.datasets:
            raise KeyError(f"no {split!r} split; the data config provides {sorted(self.datasets)}")
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        # Called after a checkpoint's loop state is restored, so global_step is where training resumes.
        # The sampler shards across ranks itself (Trainer(use_distributed_sampler=False), see conf/trainer).
        trainer = self.trainer
        consumed, rank, world = 0, 0, 1
        if trainer is not None:
            rank, world = trainer.global_rank, trainer.world_size
            consumed = trainer.global_step * trainer.accumulate_grad_batches * self.batch_size * world
        sampler = StepIndexedSampler(
            len(self.datasets["train"]), seed=self.seed, start=consumed, rank=rank, world_size=world
        )
        return self._loader("train", self.batch_size, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)


__all__ = [
    "EvalConfig",
    "OptimConfig",
    "StepIndexedSampler",
    "VLMDataModule",
    "VLMLightningModule",
    "init_from_checkpoint",
    "trainable_parts",
]
