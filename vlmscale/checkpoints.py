"""Checkpoints that survive faults: the previous `last.ckpt` is kept, a corrupt one is named with the fix.

- Writing: `AtomicCheckpointIO` writes a checkpoint to a temp file in its own folder, fsyncs it and moves
  it into place, so a kill during the write leaves the old file whole (Lightning's own writer stages in the
  system temp folder, and moving from there to another filesystem is a copy a kill can cut short). It also
  keeps the old `last.ckpt` as `last-previous.ckpt`, so damage done later (a full disk, a bad copy) still
  leaves a good checkpoint to resume from: `checkpoint.keep_previous` true | false | auto (auto: when the
  new file is under 10 GB; a DDP checkpoint holds 12 B per trained parameter, fp32 weights + Adam's m and v,
  so a 0.5B finetune keeps its previous copy (5.6 GB) and a 1.8B one (22 GB) does not; docs/GPU.md).
- DeepSpeed writes its own checkpoint folders (`StampedDeepSpeedStrategy`); a small `vlmscale-stamps.json`
  in the folder carries the training hash and step, as a single file carries them in its dict.
- Reading: `resumable_checkpoint(folder)` opens `last.ckpt` (its stamps only, memory-mapped, weights only);
  a corrupt one is set aside as `last.ckpt.corrupt` and the previous one is used, or, with none kept, the
  error names the file and the two ways out (delete it, or `resume=never`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.strategies import DeepSpeedStrategy

from vlmscale.errors import UserError
from vlmscale.results import write_json_atomic

log = logging.getLogger("vlmscale.checkpoints")

LAST = "last.ckpt"
PREVIOUS = "last-previous.ckpt"
TRAINING_HASH_KEY = "vlmscale_training_hash"  # what the weights stand for (vlmscale.results.training_hash)
STAMPS_FILE = "vlmscale-stamps.json"  # a DeepSpeed checkpoint folder's stamps
KEEP_PREVIOUS_AUTO_MAX_BYTES = 10 * 10**9  # checkpoint.keep_previous=auto keeps the previous copy below this


def keep_previous_flag(setting: bool | str | None) -> bool | str:
    """checkpoint.keep_previous as given: true / false, or "auto" (decided per file by its size)."""
    if setting in (None, "auto"):
        return "auto"
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"checkpoint.keep_previous={setting!r}: use true, false or auto")


class CorruptCheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be read; the message names it and what to do."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Torch checkpoint IO for local files: atomic writes, the previous `last.ckpt` kept (see keep_previous)."""

    def __init__(self, keep_previous: bool | str = "auto") -> None:
        super().__init__()
        self.keep_previous = keep_previous_flag(keep_previous)

    def _keeps(self, new_file: str | Path) -> bool:
        if self.keep_previous == "auto":
            return os.path.getsize(new_file) < KEEP_PREVIOUS_AUTO_MAX_BYTES
        return bool(self.keep_previous)

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
            if path.name == LAST:
                previous = path.with_name(PREVIOUS)
                if not self._keeps(tmp):
                    previous.unlink(missing_ok=True)  # a stale copy would only hold the disk
                elif path.is_file():
                    os.replace(path, previous)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class StampedDeepSpeedStrategy(DeepSpeedStrategy):
    """Lightning's DeepSpeed strategy (conf/trainer/deepspeed_zero*.yaml) whose checkpoint folders carry the
    training hash and step in `vlmscale-stamps.json`, so resuming checks a folder as it checks a file."""

    def save_checkpoint(self, checkpoint: dict, filepath: Any, storage_options: Any = None) -> None:
        super().save_checkpoint(checkpoint, filepath, storage_options)
        if self.is_global_zero:  # DeepSpeed's save is collective; one rank writes the stamps after it
            write_folder_stamps(filepath, checkpoint)


def write_folder_stamps(folder: str | Path, checkpoint: dict[str, Any]) -> Path:
    stamps = {
        "training_hash": checkpoint.get(TRAINING_HASH_KEY),
        "global_step": int(checkpoint.get("global_step", 0)),
    }
    return write_json_atomic(Path(folder) / STAMPS_FILE, stamps)


def read_stamps(path: str | Path) -> dict[str, Any]:
    """A checkpoint's vlmscale stamps and step: a file's without loading its tensors into memory, a DeepSpeed
    folder's from its stamps file (a folder written before stamps existed has none: {})."""
    import torch

    if Path(path).is_dir():
        stamps = Path(path) / STAMPS_FILE
        if not stamps.is_file():
            log.warning(
                "%s carries no %s (written before folders were stamped): not checked", path, STAMPS_FILE
            )
            return {}
        try:
            return json.loads(stamps.read_text())
        except ValueError as err:
            raise CorruptCheckpointError(f"{stamps} is not readable JSON ({err})") from err
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
    checkpoint (a folder) comes with the stamps of its stamps file."""
    folder = Path(folder)
    last, previous = folder / LAST, folder / PREVIOUS
    if last.is_dir():
        return last, read_stamps(last)
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
