"""The frozen vision tower's feature cache: its output for every image, computed once, read by every run.

The tower is frozen in every stage the paper trains, so its output for an image never changes; a run that
decodes the image and runs the tower every step pays for nothing new. With ``vision.feature_cache`` on (``auto``:
whenever the tower is frozen, :mod:`vlmscale.features.policy`), :func:`attach_features` builds the entry once
(:mod:`vlmscale.features.store`: memory-mapped arrays in the cache folder, keyed by the tower's weights, the
layers, the preprocessing and the images) and gives each dataset a reader: items then carry the features in
place of ``pixel_values`` and the VLM skips the tower (``VisionLanguageModel(..., features=...)``). On the CPU the
features are bit-identical to the live tower's, so the cache changes no result (and no training hash).

``python -m vlmscale.features build <overrides>`` builds an entry ahead of a sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vlmscale.contract import default_cache_dir
from vlmscale.data.module import loader_settings
from vlmscale.features.policy import disk_allows, estimate_bytes, tower_allows
from vlmscale.features.store import (
    SplitFeatures,
    ensure_entry,
    entry_bytes,
    entry_dir,
    entry_params,
    image_stats,
    images_sha256,
    is_complete,
    open_split,
)

log = logging.getLogger("vlmscale.features")

__all__ = [
    "SplitFeatures",
    "attach_features",
    "compute_settings",
    "entry_bytes",
    "prepare_features",
    "split_images",
]


def split_images(dataset: Any) -> tuple[list[str], list[Path]]:
    """A dataset's images, each once, in record order: (names as the records give them, their paths)."""
    names, paths, seen = [], [], set()
    for record in dataset.records:
        name = record.get("image")
        if name is not None and name not in seen:
            seen.add(name)
            names.append(name)
            paths.append(dataset.image_path(record))
    return names, paths


def images_key(data: Mapping[str, Any], datasets: Mapping[str, Any], images: Mapping[str, tuple]) -> dict:
    """The images part of the key: the synthetic suite's own folder name (its generator version and parameter
    hash) and the images listed; for other data, the path, size and mtime of every image."""
    names = images_sha256({split: listed for split, (listed, _) in images.items()})
    if data.get("source", "synthetic") == "synthetic":
        suite = Path(next(iter(datasets.values())).data_path).parent.name
        return {"synthetic": suite, "names": names}
    return {"names": names, "files": images_sha256({s: image_stats(p) for s, (_, p) in images.items()})}


def compute_settings(trainer: Mapping[str, Any]) -> dict[str, Any]:
    """Where and how the tower runs in training (device, autocast from the precision): the build runs it so."""
    accelerator = str(trainer.get("accelerator", "cpu"))
    cuda = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    precision = str(trainer.get("precision", "32-true"))
    autocast = {"bf16-mixed": "bfloat16", "16-mixed": "float16"}.get(precision)
    return {"device": "cuda" if cuda else "cpu", "autocast": autocast}


def prepare_features(
    cfg: Mapping[str, Any],
    tower: Any,
    multilevel: bool,
    datasets: Mapping[str, Any],
    *,
    required: bool = False,
    progress: bool | None = None,
) -> tuple[Path, dict[str, SplitFeatures]] | None:
    """The entry of this run's tower and images (built if missing) and a reader per split, or None when the
    run reads images live (``vision.feature_cache``; ``required``: build whatever the mode, or refuse).

    ``cfg`` is the plain run config (``vision``, ``data``, ``paths``, ``trainer``, ``loader``); ``multilevel``
    whether the connector reads the multi-level layers."""
    mode = cfg["vision"].get("feature_cache", "auto")
    if not tower_allows(mode, any(p.requires_grad for p in tower.parameters()), required):
        return None
    data = cfg.get("data") or {}
    images = {split: split_images(ds) for split, ds in datasets.items()}
    layers = tower.feature_layers(multilevel)
    processor, aspect_ratio = tower.image_processor, data.get("image_aspect_ratio", "pad")
    compute = compute_settings(cfg.get("trainer") or {})
    params = entry_params(tower, layers, processor, aspect_ratio, images_key(data, datasets, images), compute)
    cache_dir = Path((cfg.get("paths") or {}).get("cache_dir") or default_cache_dir()).expanduser()
    folder = entry_dir(cache_dir, params)
    if not is_complete(folder):
        count = sum(len(paths) for _, paths in images.values())
        itemsize = torch.finfo(tower.dtype).bits // 8
        needed = estimate_bytes(count, len(layers), tower.num_patches, tower.hidden_size, itemsize)
        sizes = f"{count} images x {len(layers)} layers x {tower.num_patches} patches x {tower.hidden_size} x {itemsize} bytes"
        if not disk_allows(mode, needed, cache_dir, sizes, required):
            return None
    progress = bool(data.get("progress", True)) if progress is None else progress
    accelerator = str((cfg.get("trainer") or {}).get("accelerator", "cpu"))
    workers = loader_settings(cfg.get("loader") or {}, accelerator)["num_workers"]
    folder = ensure_entry(
        cache_dir, params, images, tower, processor, aspect_ratio, progress=progress, workers=workers
    )
    readers = {split: open_split(folder, split, *images[split], tower, multilevel) for split in images}
    return folder, readers


def attach_features(
    cfg: Mapping[str, Any], tower: Any, multilevel: bool, datasets: Mapping[str, Any]
) -> Path | None:
    """Give every dataset its split's reader (``dataset.image_features``) when the run reads features;
    returns the entry's folder, or None when the tower runs live."""
    prepared = prepare_features(cfg, tower, multilevel, datasets)
    if prepared is None:
        return None
    folder, readers = prepared
    for split, dataset in datasets.items():
        dataset.image_features = readers[split]
    log.info(
        "vision features from %s (%.2f GiB): the tower does not run", folder, entry_bytes(folder) / 2**30
    )
    return folder
