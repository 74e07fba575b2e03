"""A run's outcome is one file, `result.json`, written once and atomically; a sweep is a folder of them.

Atomic = written to a temp file in the same folder, fsync'd, then `os.replace`d over the target, so a reader
(or a crash, or 50 concurrent writers in one sweep) never sees half a file. The analysis package reads these
files back (`analysis.collect`); nothing here depends on torch.

Two hashes of the resolved config say what a file on disk is good for:
- the **training hash** covers what changes the weights: it is stamped into checkpoints and decides whether a
  checkpoint may be resumed (or, when training is complete, evaluated again);
- the **result hash** (`config_hash` in result.json) adds the evaluation settings: it decides whether a run
  folder's `done` result can be skipped. Changing `eval.*` changes the result hash only, so a finished
  checkpoint is re-evaluated without retraining.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import tempfile
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vlmscale.errors import UserError, message_of

RESULT_FILE = "result.json"
SCHEMA_VERSION = 1

# Keys (dotted paths) that do not change what a run computes: they are left out of the config hash, so
# moving a cache or a sweep, changing threads, logging or progress bars, or resuming does not make a finished
# point look new on another machine.
NON_SEMANTIC_KEYS = frozenset(
    {
        "hydra",
        "paths",
        "logger",
        "threads",
        "resume",
        "run_dir",
        "skip_done",
        "data.cache_dir",
        "vision.feature_cache",  # the tower's output read from the cache is the live output (vlmscale.features)
        "data.progress",
        "eval.data_dir",
        "eval.progress",
        "eval.catalog",
        "trainer.enable_progress_bar",
        "trainer.enable_model_summary",
        "trainer.log_every_n_steps",
        # how fast, not what: the loader's processes and buffers, and compiled kernels for the same model
        "compile",
        "loader.num_workers",
        "loader.pin_memory",
        "loader.prefetch_factor",
        # what the job runs on and how trainer=auto chose: their effect is in trainer.*, loader.* and llm.dtype
        "cluster",
        "global_batch",
        "checkpoint.keep_previous",
    }
)

# Keys that change what is measured after (or beside) training but not a single weight: out of the training
# hash, in the result hash. Validation cadence stays in: creating a validation loader draws from the global RNG.
EVALUATION_KEYS = frozenset({"eval", "eval_during_training", "checkpoint", "loader.eval_batch_size"})


def _without(config: Mapping[str, Any], dotted: frozenset[str], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if path in dotted:
            continue
        out[key] = _without(value, dotted, f"{path}.") if isinstance(value, Mapping) else value
    return out


def config_hash(config: Mapping[str, Any], ignore: frozenset[str] = NON_SEMANTIC_KEYS) -> str:
    """Stable short hash of the parts of a (resolved, plain-dict) config that determine the result."""
    semantic = _without(config, ignore)
    blob = json.dumps(semantic, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def result_hash(config: Mapping[str, Any]) -> str:
    """What a `done` result.json stands for: everything semantic, training and evaluation."""
    return config_hash(config)


def training_hash(config: Mapping[str, Any]) -> str:
    """What a checkpoint's weights stand for: the result hash without the evaluation settings."""
    return config_hash(config, NON_SEMANTIC_KEYS | EVALUATION_KEYS)


def git_sha(cwd: str | Path | None = None) -> str:
    """The commit the code ran at (`+dirty` when the tree had changes), or 'unknown' outside a git checkout."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: they become null (and the caller records which metric it was)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _json_safe(value.item())
    return value


def write_json_atomic(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write `payload` to `path` so that readers see the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(_json_safe(dict(payload)), fh, indent=2, sort_keys=False, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_result(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's result, or None when there is none yet. A corrupt file raises with its path named."""
    path = Path(run_dir) / RESULT_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); delete it to re-run this point, the rest of the sweep is unaffected"
        ) from err


def is_done(run_dir: str | Path, expected_hash: str) -> bool:
    """True when the run folder already holds a successful result for this exact configuration."""
    try:
        result = read_result(run_dir)
    except ValueError:
        return False
    return bool(result) and result.get("status") == "done" and result.get("config_hash") == expected_hash


def failure_record(error: BaseException) -> dict[str, Any]:
    """The `error` of a failed result: what, the message, the traceback, and whether the user can fix it
    (a `UserError`: a bad value, a missing file, ...; otherwise a bug or a crash)."""
    return {
        "type": type(error).__name__,
        "message": message_of(error),
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        "user_error": isinstance(error, UserError),
    }


def non_finite_metrics(metrics: Mapping[str, Any]) -> list[str]:
    return [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]


def write_result(run_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """Write a run's `result.json`. Non-finite metrics are stored as null and listed under `nan_metrics`
    (JSON has no NaN); the record is otherwise written as given, with the schema version stamped."""
    record = dict(record)
    record.setdefault("schema", SCHEMA_VERSION)
    bad = non_finite_metrics(record.get("metrics", {}))
    if bad:
        record["nan_metrics"] = bad
    return write_json_atomic(Path(run_dir) / RESULT_FILE, record)
