"""A feature cache entry on disk: a frozen tower's output for every image of a dataset, computed once.

An entry is a folder in the cache (:func:`vlmscale.contract.default_cache_dir`) named by a hash of everything the
features depend on (:func:`entry_params`): the tower's weights, the layers stored, the image preprocessing, the
images, and how the tower ran (device, autocast, library versions). Built through
:func:`vlmscale.cache.publish_dir` (file lock, temporary folder renamed into place), so concurrent sweep
points build it once; :func:`is_complete` checks a found entry and a damaged one is built again::

    features-<tower>-L<layers>-<hash>/
      <split>.npy          [images, layers, patches, width] in the tower's output dtype (bfloat16 stored as
                           int16 bits); patches in row-major grid order, CLS dropped (what the tower hands on)
      <split>.images.txt   the split's images, one per line in row order, as its records name them
      meta.json            written last (the completion marker): key params, layers, per split the count,
                           shape, dtype, file size and a fingerprint (npy header + sampled rows), the images
                           list's sha256, images that could not be decoded, build time

Readers open each ``<split>.npy`` with ``np.load(mmap_mode="r")``: every process of a sweep shares the page
cache of one entry. :class:`SplitFeatures` reads one image's features by path, as the dataset items carry them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlmscale.cache import params_key, publish_dir

log = logging.getLogger(__name__)

FEATURES_VERSION = 1
META = "meta.json"
LAYOUT = "[image, layer, patch, channel]; layers = hidden_states indices; patches row-major, CLS dropped"
FINGERPRINT_ROWS = 16  # rows sampled into the fingerprint, and at most
FINGERPRINT_BYTES = 1 << 20  # this many bytes from the end of each (a row is written front to back)
# numpy has no bfloat16: its bits are stored as int16 and viewed back
_STORED = {torch.float32: "<f4", torch.float16: "<f2", torch.bfloat16: "<i2"}


# ---------------------------------------------------------------------------------------------------- key


def weights_sha256(module: torch.nn.Module) -> str:
    """A hash of a module's state dict: names, dtypes, shapes and bytes, in key order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def images_sha256(files: Mapping[str, Sequence[Any]]) -> str:
    digest = hashlib.sha256()
    for split in sorted(files):
        digest.update(f"{split}\n".encode())
        for row in files[split]:
            digest.update(f"{json.dumps(row)}\n".encode())
    return digest.hexdigest()


def image_stats(paths: Sequence[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of each image: a LLaVA-format folder's images as a key (an edited image changes it)."""
    stats = []
    for path in paths:
        try:
            st = os.stat(path)
            stats.append((os.path.abspath(path), st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((os.path.abspath(path), -1, -1))  # missing: the dataset reports it
    return stats


def entry_params(
    tower: Any,
    layers: Sequence[int],
    processor: Any,
    aspect_ratio: str,
    images: Mapping[str, Any],
    compute: Mapping[str, Any],
) -> dict:
    """Everything an entry's features depend on (its folder name hashes it)."""
    import transformers

    from vlmscale.data.llava import processor_image_size

    return {
        "version": FEATURES_VERSION,
        "tower": {
            "name": tower.name,
            "weights": weights_sha256(tower.encoder),
            "dtype": str(tower.dtype),
            "attention": getattr(tower.encoder.config, "_attn_implementation", None),
            "grid": tower.grid,
            "width": tower.hidden_size,
        },
        "layers": [int(i) for i in layers],
        "preprocess": {
            "processor": type(processor).__name__,
            "config": json.loads(json.dumps(processor.to_dict(), default=str)),
            "image_aspect_ratio": aspect_ratio,
            "image_size": processor_image_size(processor),
        },
        "images": dict(images),
        "compute": {**compute, "torch": torch.__version__, "transformers": transformers.__version__},
    }


def entry_dir(cache_dir: str | Path, params: Mapping[str, Any]) -> Path:
    layers = ".".join(str(i) for i in params["layers"])
    return Path(cache_dir).expanduser() / f"features-{params['tower']['name']}-L{layers}-{params_key(params)}"


# ------------------------------------------------------------------------------------------------- checks


def _fingerprint(path: Path) -> str:
    """sha256 of the npy header (shape, dtype) and of the tail of up to 16 evenly spaced rows: a file cut short
    fails to open, one whose rows were never written (zeros in a preallocated file) hashes differently."""
    array = np.load(path, mmap_mode="r")
    digest = hashlib.sha256(f"{array.shape}:{array.dtype.str}".encode())
    if len(array):
        flat = array.reshape(len(array), -1).view(np.uint8)
        for row in np.unique(np.linspace(0, len(array) - 1, FINGERPRINT_ROWS).astype(int)):
            digest.update(flat[row, -FINGERPRINT_BYTES:].tobytes())
    return digest.hexdigest()


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` is a whole entry: meta.json (written last), and every split's files with the size,
    header and fingerprint it records."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / META).read_text())
        if meta.get("version") != FEATURES_VERSION:
            return False
        for split, info in meta["splits"].items():
            array = folder / f"{split}.npy"
            if array.stat().st_size != info["bytes"] or _fingerprint(array) != info["fingerprint"]:
                return False
            names = (folder / f"{split}.images.txt").read_bytes()
            if hashlib.sha256(names).hexdigest() != info["images_sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


# -------------------------------------------------------------------------------------------------- build


class _Images(torch.utils.data.Dataset):
    """Images -> pixel values exactly as the datasets make them (``process_image``); None if undecodable."""

    def __init__(self, paths: Sequence[Path], processor: Any, aspect_ratio: str) -> None:
        self.paths, self.processor, self.aspect_ratio = list(paths), processor, aspect_ratio

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, str | None]:
        from PIL import Image

        from vlmscale.data.llava import process_image

        try:
            with Image.open(self.paths[index]) as im:
                image = im.convert("RGB")
        except Exception as err:  # PIL raises many kinds; the dataset reports it when the record is read
            return None, f"{type(err).__name__}: {err}"
        return process_image(image, self.processor, self.aspect_ratio), None


def _batch(items: list[tuple[torch.Tensor | None, str | None]]):
    shape = next((px.shape for px, _ in items if px is not None), None)
    pixels = [px if px is not None else torch.zeros(shape) for px, _ in items] if shape else []
    return (torch.stack(pixels) if pixels else None), [err for _, err in items]


def write_split(
    folder: Path,
    split: str,
    names: Sequence[str],
    paths: Sequence[Path],
    tower: Any,
    layers: Sequence[int],
    processor: Any,
    aspect_ratio: str,
    compute: Mapping[str, Any],
    *,
    batch_size: int = 64,
    workers: int = 0,
    bar: Any = None,
) -> dict:
    """Run the tower over one split's images into ``<split>.npy``; returns the split's meta.json entry."""
    loader = torch.utils.data.DataLoader(
        _Images(paths, processor, aspect_ratio), batch_size=batch_size, num_workers=workers, collate_fn=_batch
    )
    device = torch.device(compute["device"])
    shape = (len(paths), len(layers), tower.num_patches, tower.hidden_size)
    array, dtype, unreadable, row = None, tower.dtype, {}, 0
    for pixels, errors in loader:
        if pixels is not None:
            with _autocast(device, compute.get("autocast")):  # as the live tower runs under the precision
                out = tower.hidden_layers(pixels.to(device), layers)
            if array is None:  # stored in the tower's output dtype, known from the first batch
                dtype = out.dtype
                array = np.lib.format.open_memmap(folder / f"{split}.npy", "w+", _STORED[dtype], shape)
            array[row : row + len(errors)] = out.cpu().view(_bits(dtype)).numpy()
        unreadable.update({names[row + i]: err for i, err in enumerate(errors) if err})
        row += len(errors)
        if bar is not None:
            bar.update(len(errors))
    if array is None:  # no image of the split could be read (or it has none)
        array = np.lib.format.open_memmap(folder / f"{split}.npy", "w+", _STORED[dtype], shape)
    array.flush()
    del array
    listing = "".join(f"{name}\n" for name in names).encode()
    (folder / f"{split}.images.txt").write_bytes(listing)
    path = folder / f"{split}.npy"
    return {
        "count": len(paths),
        "shape": list(shape),
        "dtype": str(dtype).removeprefix("torch."),
        "bytes": path.stat().st_size,
        "fingerprint": _fingerprint(path),
        "images_sha256": hashlib.sha256(listing).hexdigest(),
        "unreadable": unreadable,
    }


def _autocast(device: torch.device, dtype: str | None):
    return torch.autocast(device.type, dtype=getattr(torch, dtype)) if dtype else contextlib.nullcontext()


def _bits(dtype: torch.dtype) -> torch.dtype:
    """What numpy stores a torch dtype as (bfloat16: its bits as int16)."""
    return torch.int16 if dtype == torch.bfloat16 else dtype


def ensure_entry(
    cache_dir: str | Path,
    params: dict,
    splits: Mapping[str, tuple[Sequence[str], Sequence[Path]]],
    tower: Any,
    processor: Any,
    aspect_ratio: str,
    *,
    progress: bool = True,
    workers: int = 0,
) -> Path:
    """The entry for ``params`` (from :func:`entry_params`), built once if it is missing or damaged.
    ``splits`` maps a split to its images: (names as the records give them, paths), in row order."""
    final = entry_dir(cache_dir, params)
    layers, compute = params["layers"], params["compute"]

    def build(tmp: Path) -> None:
        from tqdm.auto import tqdm

        start = time.time()
        home, was_training = next(tower.parameters()).device, tower.training
        tower.to(compute["device"]).eval()
        total = sum(len(paths) for _, paths in splits.values())
        meta_splits = {}
        try:
            # Its own RNG stream (the image loader draws a seed): a run that builds the entry draws the same
            # numbers afterwards as a run that finds it built.
            with (
                torch.random.fork_rng(devices=[]),
                tqdm(total=total, desc=f"features {tower.name}", unit="img", disable=not progress) as bar,
            ):
                for split, (names, paths) in splits.items():
                    meta_splits[split] = write_split(
                        tmp,
                        split,
                        names,
                        paths,
                        tower,
                        layers,
                        processor,
                        aspect_ratio,
                        compute,
                        workers=workers,
                        bar=bar,
                    )
        finally:
            tower.to(home).train(was_training)
        meta = {
            "version": FEATURES_VERSION,
            "params": params,
            "layers": list(layers),
            "layout": LAYOUT,
            "splits": meta_splits,
            "seconds": round(time.time() - start, 3),
        }
        (tmp / META).write_text(json.dumps(meta, indent=1, sort_keys=True))  # last: the entry is whole

    if not final.is_dir():
        log.info("computing the %s tower's features once into %s", tower.name, final)
    return publish_dir(final, build, is_complete)


# -------------------------------------------------------------------------------------------------- read


class SplitFeatures:
    """One split of an entry, read by image path: ``path in split`` and ``split(path)`` -> the dataset item's
    ``vision_patches [P, C]`` (and ``vision_multilevel [P, k*C]``), exactly as the tower's forward gives them.

    The array is memory-mapped on first use in each process (DataLoader workers pickle this without it)."""

    def __init__(
        self,
        array_path: Path,
        paths: Sequence[Path],
        dtype: str,
        select_slot: int,
        multilevel_slots: Sequence[int] | None,
        skip_rows: Sequence[int] = (),
    ) -> None:
        self.array_path = Path(array_path)
        self.dtype = getattr(torch, dtype)
        self.select_slot = select_slot
        self.multilevel_slots = None if multilevel_slots is None else list(multilevel_slots)
        skip = set(skip_rows)  # images that could not be decoded: the dataset reports them as it would live
        self.rows = {os.path.abspath(p): i for i, p in enumerate(paths) if i not in skip}
        self._array: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and os.path.abspath(path) in self.rows

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.array_path, mmap_mode="r")
        return self._array

    def __call__(self, path: str | os.PathLike) -> dict[str, torch.Tensor]:
        index = self.rows[os.path.abspath(path)]
        row = torch.from_numpy(np.array(self.array[index]))  # a copy out of the read-only map
        if self.dtype == torch.bfloat16:
            row = row.view(torch.bfloat16)
        fields = {"vision_patches": row[self.select_slot]}
        if self.multilevel_slots is not None:  # the tower's torch.cat of the layers along the channels
            fields["vision_multilevel"] = torch.cat([row[i] for i in self.multilevel_slots], dim=-1)
        return fields


def open_split(
    folder: Path, split: str, names: Sequence[str], paths: Sequence[Path], tower: Any, multilevel: bool
) -> SplitFeatures:
    """One split of a complete entry, laid out for ``tower`` (its selected layer, and its multi-level layers
    when ``multilevel``); ``names``/``paths`` are the split's images in row order, as when it was built."""
    meta = json.loads((folder / META).read_text())
    info = meta["splits"][split]
    if (folder / f"{split}.images.txt").read_text().splitlines() != list(names):
        raise RuntimeError(f"{folder}: the {split} images differ from the ones its key was made from")
    layers = meta["layers"]
    select = layers.index(tower.layer_index(tower.select_layer))
    levels = [layers.index(tower.layer_index(i)) for i in tower.multilevel_layers] if multilevel else None
    skip = [i for i, name in enumerate(names) if name in info["unreadable"]]
    return SplitFeatures(folder / f"{split}.npy", paths, info["dtype"], select, levels, skip)


def entry_bytes(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())
