"""Build-once cache entries: a folder named by a hash of its parameters, built under a file lock into a
temporary sibling and renamed into place.

The synthetic suite, the offline tokenizer, the pretrained tiny vision tower and a frozen tower's features
(:mod:`vlmscale.features`) all live in the cache folder (:func:`vlmscale.contract.default_cache_dir`) this way,
so sweep jobs that start together build an entry once and never see a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def params_key(params: dict) -> str:
    """A short stable hash of a JSON-able parameter dict (part of a cache folder's name)."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An inter-process lock held while the block runs (``filelock``; the lock file stays behind, harmless)."""
    from filelock import FileLock

    with FileLock(str(path)):
        yield


def publish_dir(
    final: str | Path, build: Callable[[Path], None], is_complete: Callable[[Path], bool] | None = None
) -> Path:
    """Make ``final`` exist exactly once: ``build(tmp)`` fills a temporary sibling that is renamed into place.

    A file lock next to ``final`` serialises concurrent callers (the others wait, then find it built); the
    rename keeps a crashed build from ever looking complete. ``is_complete`` checks a folder found in place
    (for entries that can be damaged after the rename: a truncated copy, a file cut short by a full disk); one
    that fails it is moved aside under the lock and built again.
    """
    final = Path(final)

    def present() -> bool:
        return final.is_dir() and (is_complete is None or is_complete(final))

    if present():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(final.parent / f".{final.name}.lock"):
        if present():
            return final
        if final.exists():  # damaged: out of the way first (readers that hold its files open keep them)
            broken = final.with_name(f".{final.name}.broken-{uuid.uuid4().hex[:8]}")
            os.rename(final, broken)
            shutil.rmtree(broken, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{uuid.uuid4().hex[:8]}-", dir=final.parent))
        try:
            build(tmp)
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final
