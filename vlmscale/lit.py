"""The LightningModule: optimisation, training stages and logging of one VLM, nothing about architecture.

Architecture lives in `vlmscale.models` (plain nn.Modules), building and checkpoint loading in
`vlmscale.assemble`, loaders in `vlmscale.data.module`, scoring in `vlmscale.eval`.

Stages (LLaVA's recipe):
- `pretrain`: vision tower and LLM frozen; the connector (compressor + projector) learns to speak the LLM's
  language (lr 1e-3).
- `finetune`: connector + LLM train (lr 2e-5), the connector initialised from a pretrain checkpoint.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import lightning as L
import torch

from vlmscale.assemble import PARTS, frozen_state_keys, upgrade_state_dict
from vlmscale.data import decode, stop_token_ids
from vlmscale.eval.runner import summarize
from vlmscale.eval.tasks.synthetic import score_answer
from vlmscale.models import VisionFeatures

STAGES = ("pretrain", "finetune")


@dataclass
class OptimConfig:
    lr: float = 1e-3
    connector_lr: float | None = None  # LLaVA-1.5 finetune can give the connector its own lr
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.0
    fused: bool | None = (
        None  # AdamW's fused kernel; None: fused when every parameter is on CUDA, else foreach
    )


@dataclass
class EvalConfig:
    max_new_tokens: int = 8
    generate: bool = True  # greedy-decode answers in validation for exact-match accuracy


def trainable_parts(stage: str) -> tuple[str, ...]:
    if stage == "pretrain":
        return ("connector",)
    if stage == "finetune":
        return ("connector", "llm")
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
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.reloadable_parts = tuple(reloadable_parts)
        # the training hash, stamped into checkpoints: resume refuses foreign ones
        self.config_hash = config_hash
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
        if compile:
            compile_llm_and_connector(self.vlm)
        self.compiled = compile
        # The first non-finite training loss (its step, its value), kept on the loss's device: noting it
        # costs no host-device sync; it is read every log_every_n_steps, before a checkpoint and at the end.
        self._nonfinite: torch.Tensor | None = None
        self._steps_since_check = 0
        # per category: [score sum, exact-match sum, answers], scored by the synthetic suite's rule (per glyph
        # for OCR, exact match otherwise) so validation and the test-split evaluation agree
        self._eval_counts: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
        self._stop_ids = stop_token_ids(tokenizer)  # eos and end-of-turn (e.g. <|im_end|>), as in eval
        self.last_validated_step = -1

    # -- what trains -------------------------------------------------------------------------------
    def _set_trainable(self, parts: tuple[str, ...]) -> None:
        for name in PARTS:
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
    def _image_inputs(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The image side of a batch (pixels, or the frozen tower's cached features in their place; the
        question for the query pass; which rows have an image)."""
        optional = ("query_ids", "query_attention_mask", "has_image")
        inputs = {key: batch.get(key) for key in optional}
        if "vision_patches" in batch:  # vlmscale.features: the tower is skipped
            grid = self.vlm.vision.grid
            features = VisionFeatures(batch["vision_patches"], batch.get("vision_multilevel"), grid)
            return {"pixel_values": None, "features": features, **inputs}
        return {"pixel_values": batch["pixel_values"], **inputs}

    def _forward(self, batch: Mapping[str, Any]):
        return self.vlm(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
            **self._image_inputs(batch),
        )

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._forward(batch).loss
        self._note_nonfinite(loss.detach())
        bs = batch["input_ids"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        return loss

    # -- a non-finite loss, found without a host-device sync per step -------------------------------------
    def _note_nonfinite(self, loss: torch.Tensor) -> None:
        if self._nonfinite is None or self._nonfinite.device != loss.device:
            self._nonfinite = torch.full((2,), -1.0, dtype=torch.float64, device=loss.device)
        first = (self._nonfinite[0] < 0) & ~torch.isfinite(loss)
        step = torch.where(first, float(self.global_step), self._nonfinite[0])  # a scalar: no copy to the GPU
        self._nonfinite = torch.stack([step, torch.where(first, loss.double(), self._nonfinite[1])])

    def check_finite(self) -> None:
        """Raise if a training loss so far was nan/inf (one sync: call it every few steps, not every step)."""
        if self._nonfinite is None:
            return
        step, value = self._nonfinite.tolist()
        if step >= 0:
            raise FloatingPointError(
                f"training loss became {value} at step {int(step)} (noticed at step {self.global_step}); lower "
                "optim.lr, enable trainer.gradient_clip_val, or use 32-bit precision (trainer.precision=32-true)"
            )

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._steps_since_check += 1
        every = self.trainer.log_every_n_steps * self.trainer.accumulate_grad_batches
        if self._steps_since_check >= every:  # the loss is logged (read back) at this cadence anyway
            self._steps_since_check = 0
            self.check_finite()

    def on_train_end(self) -> None:
        self.check_finite()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        bs = batch["input_ids"].shape[0]
        loss = self._forward(batch).loss
        self.log("val/loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)
        if not self.eval_cfg.generate:
            return
        predictions = self.generate_answers(batch)
        for pred, ref, cat in zip(predictions, batch["answers"], batch["categories"]):
            score, exact = score_answer(pred, ref, cat)
            counts = self._eval_counts[cat or "all"]
            counts[0] += score
            counts[1] += exact
            counts[2] += 1

    @torch.no_grad()
    def generate_answers(self, batch: Mapping[str, Any]) -> list[str]:
        # Compiled layers run eager here: decoding one token at a time over a growing KV cache would
        # recompile them for shapes that training never sees.
        eager = self.compiled and hasattr(torch.compiler, "set_stance")
        with torch.compiler.set_stance("force_eager") if eager else contextlib.nullcontext():
            tokens = self.vlm.generate(
                prompt_ids=batch["prompt_ids"],
                prompt_attention_mask=batch["prompt_attention_mask"],
                max_new_tokens=self.eval_cfg.max_new_tokens,
                **self._image_inputs(batch),
            )
        return decode(tokens, self.tokenizer, self._stop_ids)

    def on_validation_epoch_start(self) -> None:
        self._eval_counts.clear()

    def on_validation_epoch_end(self) -> None:
        # The eval runner's summary: error per category, error/avg the mean of the category errors.
        counts = self._eval_counts
        if counts:
            errors = {cat: 1.0 - score / n for cat, (score, _, n) in counts.items()}
            exact = {cat: 1.0 - right / n for cat, (_, right, n) in counts.items()}
            summary = summarize(
                {
                    "val": {
                        "error": sum(errors.values()) / len(errors),
                        "categories": errors,
                        "exact_categories": exact,
                    }
                }
            )
            for cat in sorted(errors):
                self.log(f"val/error/{cat}", summary[f"error/{cat}"], sync_dist=True)
                if cat == "ocr":  # partial credit per glyph; the exact-match error beside it
                    self.log(f"val/exact_error/{cat}", summary[f"exact_error/{cat}"], sync_dist=True)
                self.log(f"val/n/{cat}", float(counts[cat][2]), sync_dist=True)
            if math.isfinite(summary["error/avg"]):
                self.log("val/error/avg", summary["error/avg"], prog_bar=True, sync_dist=True)
        self._eval_counts.clear()
        self.last_validated_step = self.global_step

    # -- optimisation ------------------------------------------------------------------------------
    def make_optimizer(self, total_steps: int):
        """AdamW (the connector may have its own lr) with linear warmup then cosine decay over `total_steps`."""
        cfg = self.optim
        groups = []
        connector_params = [p for p in self.vlm.connector.parameters() if p.requires_grad]
        other_params = [
            p for n, p in self.vlm.named_parameters() if p.requires_grad and not n.startswith("connector.")
        ]
        if connector_params:
            groups.append({"params": connector_params, "lr": cfg.connector_lr or cfg.lr, "name": "connector"})
        if other_params:
            groups.append({"params": other_params, "lr": cfg.lr, "name": "llm"})
        if not groups:
            raise ValueError(f"stage {self.stage!r} leaves nothing to train")
        fused = cfg.fused
        if fused is None:  # one fused kernel per step on a GPU; the multi-tensor (foreach) path elsewhere
            fused = all(p.is_cuda for group in groups for p in group["params"])
        kernel = {"fused": True} if fused else {"foreach": True}
        optimizer = torch.optim.AdamW(groups, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, **kernel)
        total = max(int(total_steps), 1)
        warmup = int(math.ceil(cfg.warmup_ratio * total))
        schedule = partial(_warmup_cosine, warmup=warmup, total=total, floor=cfg.min_lr_ratio)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    def configure_optimizers(self):
        optimizer, scheduler = self.make_optimizer(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def setup(self, stage: str) -> None:
        """Every stage (fit, validate, test) starts with the module on the training device. Lightning's teardown
        moves it to the CPU after each stage and DDP moves it back, but a DeepSpeed engine leaves a module whose
        parameters ZeRO-3 already partitioned where it is ("zero.Init() handles device placement"): a second
        stage in one process (the end-of-run validate after a resumed fit) would find the buffers (CLIP's
        position_ids) and the parameters' placeholders, where gathered weights land, on the CPU."""
        if any(hasattr(p, "ds_id") for p in self.parameters()):  # partitioned by ZeRO-3
            self.to(self.trainer.strategy.root_device)

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
        self.check_finite()  # never write weights a nan/inf step has already spoilt
        frozen = frozen_state_keys(self.vlm, self.reloadable_parts)
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}
        checkpoint["vlmscale_stage"] = self.stage
        checkpoint["vlmscale_training_hash"] = self.config_hash  # vlmscale.checkpoints.TRAINING_HASH_KEY

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "state_dict" not in checkpoint:
            return  # a DeepSpeed checkpoint folder: the engine restores the weights itself
        # Restore what the checkpoint holds; parts left out of it stay as built.
        current = self.state_dict()
        current.update(upgrade_state_dict(checkpoint["state_dict"]))
        checkpoint["state_dict"] = current


def compile_llm_and_connector(vlm: torch.nn.Module) -> None:
    """torch.compile each LLM decoder layer and the connector, in place (``nn.Module.compile``: parameter
    names, checkpoints and the optimiser see the same modules). Per layer, as large-model trainers do: all
    layers share one compiled graph, and DDP wraps the model as before. The first changes of the sequence
    length recompile once with dynamic shapes; generation runs eager (see ``generate_answers``)."""
    decoder = vlm.llm.decoder
    for layer in getattr(decoder, "layers", [decoder]):
        layer.compile()
    vlm.connector.compile()


def _warmup_cosine(step: int, warmup: int, total: int, floor: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


__all__ = ["EvalConfig", "OptimConfig", "VLMLightningModule", "compile_llm_and_connector", "trainable_parts"]
