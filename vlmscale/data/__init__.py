"""Data: tokenizers, LLaVA conversations and datasets, the embedded synthetic VQA suite, collate, decoding.

``build_datasets(**cfg.data, tokenizer=..., image_processor=...)`` is the one entry point the training code
needs; the keys of ``conf/data/*.yaml`` are its keyword arguments. The Lightning side (the step-indexed
sampler and the DataModule) is in :mod:`vlmscale.data.module`, imported only by training.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

from vlmscale.contract import IGNORE_INDEX, IMAGE_TOKEN, default_cache_dir, to_plain
from vlmscale.data.collate import collate, pad_sequences
from vlmscale.data.conversation import (
    decode,
    encode_conversation,
    encode_prompt,
    stop_token_ids,
)
from vlmscale.data.llava import (
    LlavaDataset,
    LlavaFormatError,
    MissingImageError,
    UnreadableImageError,
    expand2square,
    process_image,
    read_records,
)
from vlmscale.data.synthetic import chance_levels, ensure_synthetic, split_paths
from vlmscale.data.tokenizer import image_token_id, load_tokenizer

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_TOKEN",
    "LlavaDataset",
    "LlavaFormatError",
    "MissingImageError",
    "UnreadableImageError",
    "build_datasets",
    "chance_levels",
    "collate",
    "decode",
    "default_cache_dir",
    "encode_conversation",
    "encode_prompt",
    "ensure_synthetic",
    "expand2square",
    "image_token_id",
    "load_tokenizer",
    "pad_sequences",
    "process_image",
    "read_records",
    "split_paths",
    "stop_token_ids",
]

SOURCES = ("synthetic", "llava")


def build_datasets(
    tokenizer,
    image_processor,
    *,
    name: str = "synthetic",
    source: str = "synthetic",
    cache_dir: str | Path | None = None,
    seed: int = 0,
    sizes: Mapping[str, int] | None = None,
    image_size: int = 64,
    family_weights: Mapping[str, float] | None = None,
    progress: bool = True,
    splits: Mapping[str, Mapping | None] | None = None,
    val_size: int = 0,
    val_seed: int = 0,
    image_aspect_ratio: str = "pad",
    max_length: int | None = 2048,
    on_missing_image: str = "error",
    system_prompt: str | None = None,
    check_images: bool = True,
    question_first: bool = False,
) -> dict[str, LlavaDataset]:
    """Build the datasets of one data config: ``{split: LlavaDataset}``.

    ``source="synthetic"``: generate (once, cached under ``cache_dir``) the embedded suite with ``seed``,
    ``sizes`` (``{"train", "val", "test"}``), ``image_size`` and ``family_weights``, and read its splits back.
    ``source="llava"``: ``splits`` maps a split name to ``{"data_path": ..., "image_folder": ...}`` (``null``
    entries are left out); ``val_size > 0`` without a ``val`` entry holds out that many training records
    (chosen with ``val_seed``). ``name`` only labels the config. The remaining keys go to every
    :class:`LlavaDataset`; ``question_first`` comes from the model (``vlm.question_first``), not the config.
    """
    if source not in SOURCES:
        raise ValueError(f"data source must be one of {SOURCES}, got {source!r}")
    common = {
        "image_aspect_ratio": image_aspect_ratio,
        "max_length": max_length,
        "on_missing_image": on_missing_image,
        "system_prompt": system_prompt,
        "check_images": check_images,
        "question_first": question_first,
    }
    if source == "synthetic":
        folder = ensure_synthetic(
            cache_dir,
            seed=seed,
            sizes=to_plain(sizes),
            image_size=image_size,
            family_weights=to_plain(family_weights),
            progress=progress,
        )
        out = {}
        for split, n in {**{"train": 1, "val": 1, "test": 1}, **(to_plain(sizes) or {})}.items():
            if n:
                data_path, image_folder = split_paths(folder, split)
                out[split] = LlavaDataset(data_path, image_folder, tokenizer, image_processor, **common)
        return out

    out = {}
    for split, spec in (to_plain(splits) or {}).items():
        if not spec:
            continue
        if "data_path" not in spec:
            raise ValueError(f"data split {split!r} needs a data_path (got keys {sorted(spec)})")
        out[split] = LlavaDataset(
            spec["data_path"], spec.get("image_folder"), tokenizer, image_processor, **common
        )
    if not out:
        raise ValueError("source='llava' needs at least one entry in splits")
    if val_size and "val" not in out and "train" in out:
        train = out["train"]
        if val_size >= len(train):
            raise ValueError(f"val_size={val_size} leaves no training records (train has {len(train)})")
        held = set(random.Random(val_seed).sample(range(len(train)), val_size))
        out["val"] = train.select(sorted(held))
        out["train"] = train.select([i for i in range(len(train)) if i not in held])
    return out
