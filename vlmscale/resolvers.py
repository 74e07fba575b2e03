"""The OmegaConf resolvers vlmscale's configs use, registered on import (the entry points import this module,
and so does hydra_plugins/vlmscale_launcher, which Hydra imports before it composes anything).

- ``${vlmscale.auto:KEY}``: what ``trainer=auto`` stands for, chosen by :mod:`vlmscale.memory` from the
  composed config: ``strategy`` (trainer.strategy), ``micro_batch`` (loader.batch_size),
  ``accumulate_grad_batches``, ``gradient_checkpointing`` and ``llm_dtype``. Keys a config (or the command line)
  sets to a value are pinned and the choice works around them: ``trainer=deepspeed_zero3`` pins the strategy,
  ``loader.batch_size=4`` the micro-batch; the others follow.
- ``${vlmscale.gpus_per_node:ACCELERATOR,DEVICES}``: GPUs SLURM allocates per node, DEVICES for a GPU trainer
  and none for a CPU one (conf/hydra/launcher/slurm.yaml).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

AUTO = "vlmscale.auto"
AUTO_KEYS = {  # resolver key -> where its value goes
    "strategy": "trainer.strategy",
    "micro_batch": "loader.batch_size",
    "accumulate_grad_batches": "trainer.accumulate_grad_batches",
    "gradient_checkpointing": "gradient_checkpointing",
    "llm_dtype": "llm.dtype",
}


def _is_auto(root: DictConfig, dotted: str) -> bool:
    parent_key, _, key = dotted.rpartition(".")
    parent = OmegaConf.select(root, parent_key) if parent_key else root
    # The node itself, never its value: reading a value resolves it, and resolving an auto key lands here again.
    if not isinstance(parent, DictConfig) or key not in parent.keys():
        return False
    return f"${{{AUTO}:" in str(parent._get_node(key)._value())


def strategy_name(strategy: Any) -> str:
    """memory.STRATEGIES name of a trainer.strategy value (none / "ddp" / a DDPStrategy or DeepSpeedStrategy
    node)."""
    if strategy in (None, "auto", "ddp") or (isinstance(strategy, str) and strategy.startswith("ddp")):
        return "ddp"
    target = str((strategy or {}).get("_target_", "")) if hasattr(strategy, "get") else ""
    if target.endswith("DDPStrategy"):
        return "ddp"
    if "DeepSpeed" in target:
        stage = strategy.get("stage") or (strategy.get("config") or {}).get("zero_optimization", {}).get(
            "stage"
        )
        if int(stage or 0) in (2, 3):
            return f"zero{int(stage)}"
    raise ValueError(
        f"trainer.strategy={strategy!r}: trainer=auto's memory model knows DDP and DeepSpeed ZeRO-2/3 only; "
        "set loader.batch_size, trainer.accumulate_grad_batches, gradient_checkpointing and llm.dtype yourself"
    )


def pinned(root: DictConfig) -> dict[str, Any]:
    """The auto keys this config sets to a value, as memory.choose's constraints."""
    out: dict[str, Any] = {}
    if not _is_auto(root, AUTO_KEYS["strategy"]):
        out["strategy"] = strategy_name(OmegaConf.select(root, "trainer.strategy", default=None))
    for key in ("micro_batch", "accumulate_grad_batches", "gradient_checkpointing"):
        if not _is_auto(root, AUTO_KEYS[key]):
            out[key] = OmegaConf.select(root, AUTO_KEYS[key])
    return out


def auto(key: str, _root_: DictConfig) -> Any:
    from vlmscale.memory import auto_settings

    if key not in AUTO_KEYS:
        raise ValueError(f"${{{AUTO}:{key}}}: the keys are {sorted(AUTO_KEYS)}")
    value = auto_settings(_root_, pinned(_root_))[key]
    # a strategy node ({_target_: ...}) must stay a config node, or instantiate hands Lightning a plain dict
    return OmegaConf.create(value) if isinstance(value, dict) else value


def gpus_per_node(accelerator: Any, devices: Any) -> int | None:
    return int(devices) if str(accelerator) in ("gpu", "cuda") else None


def register() -> None:
    OmegaConf.register_new_resolver(AUTO, auto, replace=True)
    OmegaConf.register_new_resolver("vlmscale.gpus_per_node", gpus_per_node, replace=True)


register()
