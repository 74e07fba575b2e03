"""Checkpoints that survive faults: the previous `last.ckpt` is kept, a corrupt one is named with the fix.

- Writing: `AtomicCheckpointIO` writes a checkpoint to a temp file in its own folder, fsyncs it and moves
  it into place, so a kill during the write leaves the old file whole (Lightning's own writer stages in the
  system temp folder, and moving from there to another filesystem is a copy a kill can cut short). It also
  keeps the old `last.ckpt` as `last-previous.ckpt`, so damage done later (a full disk, a bad copy) still
  leaves a good checkpoint to resume from.
- Reading: `resumable_checkpoint(folder)` opens `last.ckpt` (its stamps only, memory-mapped, weights only);
  a corrupt one is set aside as `last.ckpt.corrupt` and the previous one is used, or, with none kept, the
  error names the file and the two ways out (delete it, or `resume=never`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from vlmscale.errors import UserError

log = logging.getLogger("vlmscale.checkpoints")

LAST = "last.ckpt"
PREVIOUS = "last-previous.ckpt"
TRAINING_HASH_KEY = "vlmscale_training_hash"  # what the weights stand for (vlmscale.results.training_hash)


class CorruptCheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be read; the message names it and what to do."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Torch checkpoint IO for local files: atomic writes, the previous `last.ckpt` kept."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        import torch

        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer killed mid-write
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            if path.name == LAST and path.is_file():
                os.replace(path, path.with_name(PREVIOUS))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_stamps(path: str | Path) -> dict[str, Any]:
    """A checkpoint file's vlmscale stamps and step, without loading its tensors into memory."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, pickle errors ... for a damaged file
        raise CorruptCheckpointError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {err})"
        ) from err
    return {
        "training_hash": checkpoint.get(TRAINING_HASH_KEY),
        "global_step": int(checkpoint.get("global_step", 0)),
    }


def resumable_checkpoint(folder: str | Path) -> tuple[Path | None, dict[str, Any]]:
    """The checkpoint a run folder's `checkpoints/` resumes from, and its stamps: `last.ckpt`, or the kept
    previous one when `last.ckpt` is missing or corrupt; (None, {}) when there is none. A DeepSpeed
    checkpoint (a folder) is returned as it is, without stamps."""
    folder = Path(folder)
    last, previous = folder / LAST, folder / PREVIOUS
    if last.is_dir():
        return last, {}
    damage = None
    if last.is_file():
        try:
            return last, read_stamps(last)
        except CorruptCheckpointError as err:
            damage = err
    if previous.is_file():
        try:
            stamps = read_stamps(previous)
        except CorruptCheckpointError as err:
            log.warning("the kept previous checkpoint is unreadable too: %s", err)
        else:
            if damage is not None:
                os.replace(last, last.with_name(LAST + ".corrupt"))  # out of the way of the next save
                log.warning("%s; resuming from the previous checkpoint %s instead", damage, previous)
            return previous, stamps
    if damage is not None:
        raise CorruptCheckpointError(
            f"{damage}, and no previous good checkpoint is kept: delete {last} to train this run from the "
            "start, or pass resume=never"
        ) from damage
    return None, {}
