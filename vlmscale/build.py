"""From a composed config to the Lightning objects: module, data module, trainer, loggers, callbacks.

The tokenizer and VLM come from `vlmscale.assemble` (shared with evaluation); each config group's keys are
the keyword arguments of the builder it feeds (see docs/ARCHITECTURE.md), so this file is wiring only: no
architecture, no data logic, no training logic.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig

from vlmscale.assemble import build_model, reloadable_parts
from vlmscale.checkpoints import AtomicCheckpointIO
from vlmscale.contract import to_plain
from vlmscale.data.module import SAMPLER_KEYS, VLMDataModule, loader_settings
from vlmscale.features import attach_features
from vlmscale.launch import SaveOnInterrupt, StepSeededRNG
from vlmscale.lit import VLMLightningModule
from vlmscale.step_progress import StepProgressBar

log = logging.getLogger("vlmscale.build")


def uses_deepspeed(cfg: DictConfig) -> bool:
    """trainer.strategy is a DeepSpeed strategy node (conf/trainer/deepspeed_zero*.yaml, or trainer=auto's pick);
    a name such as "ddp" or "auto" is Lightning's."""
    strategy = cfg.trainer.get("strategy")
    return "DeepSpeed" in str(strategy.get("_target_", "") if hasattr(strategy, "get") else "")


def build_module(cfg: DictConfig, config_hash: str | None = None) -> tuple[VLMLightningModule, Any]:
    """The VLM (vlmscale.assemble, with init_from's weights) wrapped for training one stage."""
    tokenizer, vlm = build_model(cfg, weights=cfg.get("init_from"))
    if cfg.stage == "finetune" and not cfg.get("init_from") and cfg.llm.get("pretrained"):
        # A random tiny LLM trains from scratch with the connector in one stage; a pretrained one should not
        # meet an untrained connector (LLaVA: pretrain the connector first).
        log.warning(
            "stage=finetune without init_from=<pretrain run>/checkpoints/last.ckpt: the connector is untrained"
        )
    if cfg.stage == "finetune" and cfg.llm.get("dtype") in ("bfloat16", "float16"):
        if not uses_deepspeed(cfg):
            log.warning(
                "finetuning a %s LLM without DeepSpeed: AdamW updates of ~lr are below half a %s step for most "
                "weights, so the LLM barely moves; use trainer=deepspeed_zero2/3 (fp32 master weights) or "
                "llm.dtype=float32",
                cfg.llm.dtype,
                cfg.llm.dtype,
            )
    module = VLMLightningModule(
        vlm,
        tokenizer,
        stage=cfg.stage,
        optim=to_plain(cfg.optim),
        eval=to_plain(cfg.eval_during_training),
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
        # Frozen parts loadable again by name need not fill checkpoints; randomly initialised ones must.
        reloadable_parts=reloadable_parts(cfg),
        config_hash=config_hash,
        compile=bool(cfg.get("compile", False)),
    )
    return module, tokenizer


def build_datamodule(cfg: DictConfig, tokenizer: Any, vlm: Any) -> VLMDataModule:
    from vlmscale.data import build_datasets, collate

    data = to_plain(cfg.data)
    # The data group also says how its training split is batched (LLaVA groups its finetune mix by length).
    sampler = {key: data.pop(key) for key in SAMPLER_KEYS if key in data}
    datasets = build_datasets(
        tokenizer, vlm.vision.image_processor, question_first=vlm.question_first, **data
    )
    # A frozen tower's output comes from the feature cache (vision.feature_cache): items carry it, no image
    attach_features(to_plain(cfg), vlm.vision, vlm.connector.needs_multilevel, datasets)
    image_size = next(iter(datasets.values())).image_size
    loader = to_plain(cfg.loader)
    return VLMDataModule(
        datasets,
        collate_fn=partial(collate, pad_token_id=tokenizer.pad_token_id, image_size=image_size),
        batch_size=loader.get("batch_size", 16),
        eval_batch_size=loader.get("eval_batch_size"),
        seed=int(cfg.seed),
        group_by_length=bool(sampler.get("group_by_length", False)),
        loader_kwargs=loader_settings(loader, str(cfg.trainer.get("accelerator", "cpu"))),
    )


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """CSV always, one folder per attempt (`logs/version_<n>/metrics.csv`: a resumed run adds a folder and
    never overwrites the history of the one before); the `logger` group adds others (e.g. wandb, which
    every attempt of the run folder continues under one run id)."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(run_dir), name="logs")]
    for name, node in (cfg.get("logger") or {}).items():
        if node is None:
            continue
        kwargs: dict[str, Any] = {}
        if name == "wandb":
            kwargs.update(
                offline=wandb_offline(), save_dir=str(run_dir), id=wandb_run_id(run_dir), resume="allow"
            )
        loggers.append(instantiate(node, **kwargs))
    return loggers


def wandb_run_id(run_dir: Path) -> str:
    """The W&B run id of a run folder: made once, kept in `<run_dir>/logs/wandb-run-id`, so a resumed
    attempt logs into the same W&B run instead of starting a new one."""
    path = Path(run_dir) / "logs" / "wandb-run-id"
    if path.is_file():
        return path.read_text().strip()
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    run_id = secrets.token_hex(4)
    path.write_text(run_id + "\n")
    return run_id


def wandb_offline() -> bool:
    """Offline when WANDB_MODE says so or there is no API key (a run must never hang asking for one)."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return True
    if mode == "online":
        return False
    has_key = bool(os.environ.get("WANDB_API_KEY")) or Path("~/.netrc").expanduser().is_file()
    return not has_key


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list[L.Callback]:
    ckpt_dir = run_dir / "checkpoints"
    every = int(cfg.checkpoint.every_n_train_steps)
    callbacks: list[L.Callback] = [
        ModelCheckpoint(dirpath=str(ckpt_dir), save_last=True, save_top_k=0, every_n_train_steps=every),
        SaveOnInterrupt(ckpt_dir / "last.ckpt"),
        StepSeededRNG(int(cfg.seed)),  # dropout draws depend on the step alone: resume stays exact
        LearningRateMonitor(logging_interval="step"),
    ]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(StepProgressBar())  # optimiser steps of trainer.max_steps, loss, ETA
    return callbacks


def build_trainer(cfg: DictConfig, run_dir: Path) -> L.Trainer:
    plugins: list[Any] = []
    if not uses_deepspeed(cfg):
        # DeepSpeed writes its own sharded folders
        plugins.append(AtomicCheckpointIO(keep_previous=cfg.checkpoint.get("keep_previous", "auto")))
    if SLURMEnvironment.detect():
        # submitit owns requeueing (vlmscale/launch.py); Lightning's would fight it.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return instantiate(
        cfg.trainer,
        default_root_dir=str(run_dir),
        logger=build_loggers(cfg, run_dir),
        callbacks=build_callbacks(cfg, run_dir),
        plugins=plugins or None,
    )


def prompt_token_counts(dataset) -> tuple[float, float]:
    """Mean text tokens Q of the evaluation prompts (prompt minus its <image> placeholder) and mean question
    tokens (what the QueCC query pass runs), from the text alone: no image is loaded."""
    n = len(dataset)
    if n == 0:
        raise ValueError("the evaluation split is empty; cannot measure text tokens Q")
    text = query = 0
    for index in range(n):
        enc = dataset.encode_text(index)
        text += len(enc["prompt_ids"]) - int(dataset.records[index].get("image") is not None)
        query += len(enc["query_ids"])
    return text / n, query / n
