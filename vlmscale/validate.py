"""Config validation before anything is built or trained: every problem found, in one message.

`config_problems(config)` is a pure function over the plain, resolved run config (`contract.to_plain`): it
returns one line per problem (empty when the config is fine) and touches nothing but the file system to see
that data paths exist. `validate_config(config)` raises :class:`ConfigError` listing them all, so a user fixes
a config in one round instead of one training run per mistake. The checks are the ones a run would otherwise
fail on late (after training, at the final eval) or, worse, finish `done` with nonsense: a negative learning
rate, zero or endless steps, a T the vision grid cannot tile, eval tasks the data cannot provide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vlmscale.contract import FEATURE_CACHE_MODES
from vlmscale.errors import UserError

STAGES = ("pretrain", "finetune")
TRAINING_TOWER = "the vision tower trains in this run (vision.freeze=false), so its output changes every step"
FEATURE_CACHE_ON_TRAINING_TOWER = (
    f"vision.feature_cache=on: {TRAINING_TOWER} and cannot be cached; set vision.feature_cache=auto or off, "
    "or vision.freeze=true"
)
RESUME_MODES = ("auto", "never")


class ConfigError(UserError):
    """The run config has problems; the message lists every one with the key to change."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid config ({len(self.problems)} problem(s)):\n{lines}")


def validate_config(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` naming every problem of `config` (plain resolved dict), or return."""
    problems = config_problems(config)
    if problems:
        raise ConfigError(problems)


def config_problems(config: Mapping[str, Any]) -> list[str]:
    """Every problem found in a plain resolved run config, one line each (the key, the value, the fix)."""
    problems: list[str] = []
    for check in (
        _top_level,
        _pretrained,
        _vision_grid,
        _feature_cache,
        _optim,
        _trainer,
        _loader,
        _data,
        _eval,
    ):
        problems.extend(check(config))
    return problems


# ------------------------------------------------------------------------------------------ value checks


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_at_least(key: str, value: Any, low: int, hint: str = "") -> list[str]:
    if _is_int(value) and value >= low:
        return []
    return [f"{key}={value!r}: must be an integer >= {low}{hint}"]


def _number_in(
    key: str, value: Any, low: float, high: float | None = None, *, low_open: bool = False
) -> list[str]:
    """`value` a finite number with low < value (low_open) or low <= value, and value <= high if given."""
    ok = _is_number(value) and (value > low if low_open else value >= low) and (high is None or value <= high)
    if ok:
        return []
    bound = f"> {low}" if low_open else f">= {low}"
    if high is not None:
        bound += f" and <= {high}"
    return [f"{key}={value!r}: must be a number {bound}"]


def _section(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    node = config.get(key)
    return node if isinstance(node, Mapping) else {}


# ---------------------------------------------------------------------------------------------- sections


def _top_level(config: Mapping[str, Any]) -> list[str]:
    problems = _int_at_least(
        "visual_tokens", config.get("visual_tokens"), 1, " (T, the number of visual tokens)"
    )
    seed = config.get("seed")
    if not (_is_int(seed) and 0 <= seed < 2**32):
        problems.append(f"seed={seed!r}: must be an integer in [0, 2**32)")
    threads = config.get("threads")
    if threads not in (None, "auto", "") and not (_is_int(threads) and threads >= 1):
        problems.append(f"threads={threads!r}: must be an integer >= 1, or null for the machine default")
    if config.get("stage") not in STAGES:
        problems.append(f"stage={config.get('stage')!r}: must be one of {', '.join(STAGES)}")
    resume = config.get("resume", "auto")
    if resume not in (*RESUME_MODES, None, False) and not Path(str(resume)).exists():
        problems.append(
            f"resume={resume!r}: no such checkpoint; use resume=auto, resume=never or a .ckpt path"
        )
    init_from = config.get("init_from")
    if init_from and not Path(str(init_from)).exists():
        problems.append(f"init_from={init_from!r}: no such checkpoint")
    every = _section(config, "checkpoint").get("every_n_train_steps", 1)
    problems += _int_at_least("checkpoint.every_n_train_steps", every, 1)
    if config.get("compile", False) not in (True, False):
        problems.append(f"compile={config['compile']!r}: must be true or false")
    return problems


def _pretrained(config: Mapping[str, Any]) -> list[str]:
    """A model given as a local path (absolute, ./, ../ or ~) must be there; an HF name is checked when it
    loads (offline, a missing one fails there with the Hub's own message)."""
    problems = []
    for group, key in (("llm", "pretrained"), ("llm", "tokenizer"), ("vision", "pretrained")):
        value = _section(config, group).get(key)
        local = isinstance(value, str) and value.startswith(("/", "./", "../", "~"))
        if local and not Path(value).expanduser().exists():
            problems.append(
                f"{group}.{key}={value!r}: no such folder; give a saved model folder or a Hugging Face name"
            )
    return problems


def _vision_grid(config: Mapping[str, Any]) -> list[str]:
    """T must tile the G x G patch grid, T = (G/k)^2, or be G^2 without a compressor. G is known from the
    tower's config (a pretrained tower's grid is checked when it is built)."""
    tokens = config.get("visual_tokens")
    vision = _section(config, "vision").get("config")
    if not _is_int(tokens) or tokens < 1 or not isinstance(vision, Mapping):
        return []
    size, patch = vision.get("image_size"), vision.get("patch_size")
    if not (_is_int(size) and _is_int(patch) and patch >= 1 and size >= patch):
        return [
            f"vision.config: image_size={size!r} and patch_size={patch!r} must be integers, image >= patch"
        ]
    grid = size // patch
    if _section(config, "compressor").get("name", "none") == "none":
        if tokens != grid * grid:
            return [
                f"visual_tokens={tokens}: without a compressor T must be the full {grid}x{grid} grid = "
                f"{grid * grid}; pick a compressor (compressor=quecc, avgpool) for fewer tokens"
            ]
        return []
    from vlmscale.models.quecc import valid_token_counts

    valid = valid_token_counts(grid)
    if tokens not in valid:
        return [
            f"visual_tokens={tokens}: does not tile the {grid}x{grid} vision grid (T = (G/k)^2); "
            f"valid values are {valid}"
        ]
    return []


def _feature_cache(config: Mapping[str, Any]) -> list[str]:
    """vision.feature_cache is auto, on or off; `on` needs a frozen tower (vlmscale.features.policy)."""
    vision = _section(config, "vision")
    mode = vision.get("feature_cache", "auto")
    if mode not in FEATURE_CACHE_MODES:
        return [f"vision.feature_cache={mode!r}: must be one of {', '.join(FEATURE_CACHE_MODES)}"]
    if mode == "on" and vision.get("freeze", True) is False:
        return [FEATURE_CACHE_ON_TRAINING_TOWER]
    return []


def _optim(config: Mapping[str, Any]) -> list[str]:
    optim = _section(config, "optim")
    problems = _number_in("optim.lr", optim.get("lr"), 0, low_open=True)
    if optim.get("projector_lr") is not None:
        problems += _number_in("optim.projector_lr", optim.get("projector_lr"), 0, low_open=True)
    for key, high in (("weight_decay", None), ("warmup_ratio", 1), ("min_lr_ratio", 1)):
        if key in optim:
            problems += _number_in(f"optim.{key}", optim[key], 0, high)
    return problems


def _trainer(config: Mapping[str, Any]) -> list[str]:
    trainer = _section(config, "trainer")
    steps = trainer.get("max_steps")
    if steps == -1:
        return [
            "trainer.max_steps=-1: the training stream is endless, so -1 trains forever; set a step count >= 1"
        ]
    problems = _int_at_least("trainer.max_steps", steps, 1, " (training is counted in optimiser steps)")
    for key in ("accumulate_grad_batches", "devices"):
        if _is_int(trainer.get(key)):
            problems += _int_at_least(f"trainer.{key}", trainer[key], 1)
    interval = trainer.get("val_check_interval")
    if interval is not None and not (_is_number(interval) and interval > 0):
        problems.append(f"trainer.val_check_interval={interval!r}: must be a step count >= 1")
    clip = trainer.get("gradient_clip_val")
    if clip is not None:
        problems += _number_in("trainer.gradient_clip_val", clip, 0)
    return problems


def _loader(config: Mapping[str, Any]) -> list[str]:
    loader = _section(config, "loader")
    problems = []
    for key in ("batch_size", "eval_batch_size"):
        if loader.get(key) is not None:
            problems += _int_at_least(f"loader.{key}", loader[key], 1)
    if loader.get("num_workers", "auto") != "auto":
        problems += _int_at_least("loader.num_workers", loader["num_workers"], 0, " (or auto)")
    if loader.get("prefetch_factor") is not None:
        problems += _int_at_least("loader.prefetch_factor", loader["prefetch_factor"], 1)
    if loader.get("pin_memory", "auto") not in ("auto", True, False):
        problems.append(f"loader.pin_memory={loader['pin_memory']!r}: must be true, false or auto")
    return problems


def _data(config: Mapping[str, Any]) -> list[str]:
    data = _section(config, "data")
    problems = []
    for key, allowed in (("on_missing_image", ("error", "skip")), ("image_aspect_ratio", ("pad", "crop"))):
        if key in data and data[key] not in allowed:
            problems.append(f"data.{key}={data[key]!r}: must be one of {', '.join(allowed)}")
    if data.get("max_length") is not None:
        problems += _int_at_least("data.max_length", data["max_length"], 1)
    if data.get("source", "synthetic") != "llava":
        sizes = data.get("sizes") or {}
        if isinstance(sizes, Mapping) and not (_is_int(sizes.get("train", 1)) and sizes.get("train", 1) >= 1):
            problems.append(f"data.sizes.train={sizes.get('train')!r}: must be an integer >= 1")
        return problems
    splits = data.get("splits") or {}
    if not any(splits.values()):
        problems.append("data.splits: source=llava needs at least one split with a data_path")
    for split, spec in splits.items():
        if not spec:
            continue
        path = spec.get("data_path")
        if not path or not Path(str(path)).expanduser().is_file():
            problems.append(
                f"data.splits.{split}.data_path={path!r}: no such file; set LLAVA_DATA_DIR or the path itself"
            )
        folder = spec.get("image_folder")
        if folder and not Path(str(folder)).expanduser().is_dir():
            problems.append(f"data.splits.{split}.image_folder={folder!r}: no such folder")
    return problems


def _eval(config: Mapping[str, Any]) -> list[str]:
    """Every eval task known and available: `synthetic` needs the synthetic data (or its own root), a
    benchmark needs its folder. Found here, not after the whole training."""
    from vlmscale.eval.tasks import TASKS, default_root

    ev = _section(config, "eval")
    tasks = ev.get("tasks") or []
    if not isinstance(tasks, (list, tuple)):
        return [f"eval.tasks={tasks!r}: must be a list of task names, e.g. [synthetic,gqa]"]
    problems = []
    if ev.get("limit") is not None:
        problems += _int_at_least("eval.limit", ev["limit"], 1)
    if ev.get("batch_size") is not None:
        problems += _int_at_least("eval.batch_size", ev["batch_size"], 1)
    catalog = ev.get("catalog") or {}
    synthetic_data = _section(config, "data").get("source", "synthetic") == "synthetic"
    for name in tasks:
        if name not in TASKS:
            problems.append(f"eval.tasks: unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
            continue
        own_root = (catalog.get(name) or {}).get("root")
        root = own_root or (None if name == "synthetic" else default_root(name, ev.get("data_dir")))
        if name == "synthetic" and root is None:
            if not synthetic_data:
                problems.append(
                    f"eval.tasks: 'synthetic' scores the synthetic suite's test split, but data="
                    f"{_section(config, 'data').get('name')} is not the synthetic suite; set eval.tasks to "
                    "benchmarks of this data (e.g. eval.tasks=[gqa,textvqa]) or eval.catalog.synthetic.root"
                )
            continue
        if root is None or not Path(str(root)).expanduser().exists():
            problems.append(
                f"eval.tasks: {name!r} has no data at {root!r}; set VLMSCALE_EVAL_DIR (or eval.data_dir, "
                f"or eval.catalog.{name}.root) to where the benchmark is, or drop it from eval.tasks"
            )
    return problems
