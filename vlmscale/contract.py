"""Names every part of vlmscale agrees on, in one torch-free module (`analysis` imports it too).

Nothing here imports torch, Lightning, Hydra or transformers: it is the contract between the training side
(models, data, Lightning, Hydra) and the reading side (analysis, notebooks, other frameworks' results).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# -- tokens and labels -------------------------------------------------------------------------------------
IMAGE_TOKEN = "<image>"  # the placeholder the visual tokens replace; one special id in every tokenizer
IGNORE_INDEX = -100  # label of positions that carry no loss (prompt, image, padding); torch's default

# -- the cache ---------------------------------------------------------------------------------------------
CACHE_ENV = "VLMSCALE_CACHE"
DEFAULT_CACHE = "~/.cache/vlmscale"


def default_cache_dir() -> Path:
    """``$VLMSCALE_CACHE`` or ``~/.cache/vlmscale``: the synthetic suite, the offline tokenizer, the tiny tower."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


# vision.feature_cache (conf/vision/*.yaml): the frozen tower's output read from the cache (vlmscale.features).
# auto: when the tower is frozen and the entry fits on disk | on: or the run is refused | off: the tower runs.
FEATURE_CACHE_MODES = ("auto", "on", "off")
FEATURE_CACHE_ENV = "VLMSCALE_FEATURE_CACHE"  # the vision groups' default (the test suite sets off)


# -- run folders -------------------------------------------------------------------------------------------
# A sweep folder holds one run folder per grid point; the folder name is the point, never a timestamp, so a
# re-run or a requeued job finds its own checkpoint and result. conf/train.yaml spells the same pattern in
# Hydra's interpolation syntax (tests/test_contract.py keeps the two equal).
RUN_DIR_KEYS = {"llm": "llm", "T": "visual_tokens", "seed": "seed"}  # folder key -> result/config key
RESULT_FILE = "result.json"


def run_dir_name(llm: str, visual_tokens: int, seed: int) -> str:
    """The run folder of one grid point: ``llm=<name>/T=<T>/seed=<s>``."""
    return f"llm={llm}/T={int(visual_tokens)}/seed={int(seed)}"


def parse_run_dir(rel: str | os.PathLike) -> dict[str, Any]:
    """``llm=a/T=4/seed=0`` -> ``{"llm": "a", "visual_tokens": 4, "seed": 0}``; unknown ``key=value`` parts
    are kept under their own key, integers become ints, parts without ``=`` are ignored."""
    point: dict[str, Any] = {}
    for part in Path(rel).parts:
        match = re.fullmatch(r"([^=]+)=(.*)", part)
        if not match:
            continue
        key, value = match.groups()
        key = RUN_DIR_KEYS.get(key, key)
        try:
            point[key] = int(value)
        except ValueError:
            point[key] = value
    return point


# -- configs -----------------------------------------------------------------------------------------------
def to_plain(value: Any) -> Any:
    """An OmegaConf node (or any nested mapping/sequence) -> plain dicts and lists, interpolations resolved.

    OmegaConf is imported only when the value is one of its containers, so this stays usable without it."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


# -- JSON written by others ----------------------------------------------------------------------------------
def parse_json(text: str, expected: type[dict] | type[list]) -> Any:
    """``json.loads`` for files a user or another run wrote: a ValueError that says where the text breaks
    and what top-level value was expected (callers add the path and the likely cause)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, expected):
        kind = "object" if expected is dict else "list"
        raise ValueError(f"expected a JSON {kind}, got {type(data).__name__}")
    return data
