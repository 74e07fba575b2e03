"""Whether a run reads the cache: ``vision.feature_cache`` (auto | on | off), the tower's state and the disk.

- ``off``: the tower runs on every image, every step.
- ``auto`` (default): the cache is used while the tower is frozen and the entry fits on the cache's disk;
  otherwise the run goes on with the live tower and says why. It never stops a run that could go on.
- ``on``: the cache is used, or the run stops before training with what to change (exit status 2).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from vlmscale.validate import FEATURE_CACHE_ON_TRAINING_TOWER, TRAINING_TOWER, ConfigError

log = logging.getLogger("vlmscale.features")


def estimate_bytes(images: int, layers: int, patches: int, width: int, itemsize: int) -> int:
    """An entry's size: images x layers x patches x width x bytes per value (npy headers aside)."""
    return images * layers * patches * width * itemsize


def free_bytes(folder: str | Path) -> int:
    """Free space on the disk that holds ``folder`` (or would: its nearest existing parent)."""
    path = Path(folder).expanduser().absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def human(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def tower_allows(mode: str, tower_trains: bool, required: bool = False) -> bool:
    """False (the tower runs live) for ``off`` or a training tower. A training tower is refused where the
    cache is asked for (``on``; ``required``: a build): its output changes every step, nothing to cache."""
    if mode == "off" and not required:
        return False
    if not tower_trains:
        return True
    if mode == "on":
        raise ConfigError([FEATURE_CACHE_ON_TRAINING_TOWER])
    if required:
        fix = "a feature cache is for frozen towers (vision.freeze=true)"
        raise ConfigError([f"vision.freeze=false: {TRAINING_TOWER}; {fix}"])
    log.info("vision.feature_cache=auto: %s, so it runs live", TRAINING_TOWER)
    return False


def disk_allows(mode: str, needed: int, cache_dir: str | Path, sizes: str, required: bool = False) -> bool:
    """Whether an entry of ``needed`` bytes fits the free space under ``cache_dir``; ``on``/``required``
    refuses when it does not, ``auto`` warns and runs the tower live. ``sizes`` spells out the estimate."""
    free = free_bytes(cache_dir)
    if needed <= free:
        return True
    what = f"the feature cache needs {human(needed)} ({sizes}) under {cache_dir} but only {human(free)} is free there"
    fix = "free space or point paths.cache_dir (or $VLMSCALE_CACHE) at a larger disk"
    if mode == "on" or required:
        raise ConfigError([f"vision.feature_cache={mode}: {what}; {fix}, or set vision.feature_cache=off"])
    log.warning("vision.feature_cache=auto: %s, so the tower runs live (%s to cache it)", what, fix)
    return False
