"""Sweep folder -> table: one row per grid point, the `result.json` fields flattened.

A sweep folder holds run folders `llm=<name>/T=<visual_tokens>/seed=<seed>/result.json` (docs/ARCHITECTURE.md).
Every `result.json` under the folder becomes one row; nested objects are flattened with dots
(`metrics.error/avg`, `error.message`). Failed runs stay in the table with their status; run folders that
never wrote a `result.json` appear with status `missing`; a corrupt or half-written `result.json` is reported
by path and skipped (counted), never fatal. Tables (CSV or Parquet) are read back with `read_table`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.errors import AnalysisInputError
from vlmscale.contract import RESULT_FILE, parse_json, parse_run_dir

#: Left out of the table unless asked for: the resolved config is large and the traceback is multi-line.
_BULKY = ("config", "error.traceback")
_SORT_KEYS = ("llm_params", "visual_tokens", "seed", "path")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass
class Collected:
    """A sweep folder read into a table, plus what could not be read."""

    table: pd.DataFrame
    root: Path
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def status_counts(self) -> dict[str, int]:
        if self.table.empty or "status" not in self.table:
            return {}
        return {str(k): int(v) for k, v in self.table["status"].value_counts(dropna=False).items()}

    def summary(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.status_counts.items()))
        text = f"{len(self.table)} points in {self.root} ({counts or 'none'})"
        if self.corrupt:
            text += f"; {len(self.corrupt)} unreadable result.json skipped"
        return text


def flatten(obj: dict, prefix: str = "", skip: tuple[str, ...] = ()) -> dict:
    """Nested dicts -> one level with dotted keys; lists become JSON text. Keys in `skip` are dropped."""
    flat: dict = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if name in skip:
            continue
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}.", skip=skip))
        elif isinstance(value, list | tuple):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _read_result(path: Path) -> dict:
    """Parse one result.json; raises ValueError with a short reason when it is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read: {exc}") from exc
    if not text.strip():
        raise ValueError("empty file (half-written?)")
    try:
        data = parse_json(text, dict)
    except ValueError as exc:
        raise ValueError(f"{exc} (half-written?)") from None
    if "status" not in data:
        raise ValueError("no 'status' field (not a vlmscale result.json?)")
    return data


def collect_sweep(root: str | Path, include_config: bool = False) -> Collected:
    """Read every `result.json` under `root` into a table (one row per run folder).

    Columns: the flattened result fields, plus `path` (the run folder relative to `root`). Rows of run
    folders named like a grid point (`.../seed=<s>`) that hold no result.json get status `missing`.
    `include_config=True` also flattens the resolved config (`config.*` columns) and the error traceback.
    Raises AnalysisInputError when `root` is not a folder or holds no run at all.
    """
    root = Path(root)
    if not root.exists():
        raise AnalysisInputError(
            f"sweep folder {root} does not exist: check the path (or run the sweep first)"
        )
    if not root.is_dir():
        raise AnalysisInputError(f"{root} is not a folder: `table` reads a sweep folder of result.json files")
    skip = () if include_config else _BULKY
    rows: list[dict] = []
    corrupt: list[tuple[str, str]] = []
    run_dirs: set[Path] = set()
    for path in sorted(root.rglob(RESULT_FILE)):
        rel = path.relative_to(root)
        if _is_hidden(rel) or not path.is_file():
            continue
        run_dirs.add(path.parent)
        try:
            data = _read_result(path)
        except ValueError as exc:
            corrupt.append((str(path), str(exc)))
            continue
        row = flatten(data, skip=skip)
        row["path"] = str(rel.parent)
        rows.append(row)
    for run_dir in sorted(root.rglob("seed=*")):
        rel = run_dir.relative_to(root)
        if run_dir.is_dir() and run_dir not in run_dirs and not _is_hidden(rel):
            rows.append({"status": "missing", **parse_run_dir(rel), "path": str(rel)})
    if not rows and not corrupt:
        raise AnalysisInputError(
            f"no {RESULT_FILE} under {root}: the sweep folder is empty. Run the sweep first "
            "(python -m vlmscale.train +sweep=tiny hydra.sweep.dir=...) or point at the folder it wrote"
        )
    table = pd.DataFrame(rows)
    if not table.empty:
        front = [c for c in ("status", "llm", "llm_params", "visual_tokens", "seed") if c in table]
        table = table[front + [c for c in table.columns if c not in front]]
        keys = [c for c in _SORT_KEYS if c in table]
        table = table.sort_values(keys, na_position="last", kind="stable").reset_index(drop=True)
    return Collected(table=table, root=root, corrupt=corrupt)


def write_table(table: pd.DataFrame, out: str | Path) -> Path:
    """Write a table as CSV or Parquet, chosen by the file suffix."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise AnalysisInputError(f"--out {out}: use a .csv or .parquet file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        table.to_csv(out, index=False)
    else:
        # Parquet needs one type per column: mixed object columns (e.g. error.message None/str) go as text.
        fixed = table.copy()
        for col in [c for c in fixed.columns if pd.api.types.is_object_dtype(fixed[c])]:
            fixed[col] = fixed[col].map(
                lambda v: None if _missing(v) else v if isinstance(v, str) else str(v)
            )
        fixed.to_parquet(out, index=False)
    return out


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def read_table(source: str | Path) -> tuple[pd.DataFrame, Collected | None]:
    """A CSV/Parquet file or a sweep folder -> (table, the Collected report when it was a folder)."""
    source = Path(source)
    if not source.exists():
        raise AnalysisInputError(
            f"{source} does not exist: give a results table (.csv/.parquet) or a sweep folder"
        )
    if source.is_dir():
        collected = collect_sweep(source)
        return collected.table, collected
    suffix = source.suffix.lower()
    try:
        if suffix == ".csv":
            table = pd.read_csv(source)
        elif suffix in (".parquet", ".pq"):
            table = pd.read_parquet(source)
        else:
            raise AnalysisInputError(
                f"{source}: unknown table format '{suffix}'; give a .csv or .parquet file or a sweep folder"
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as exc:
        if isinstance(exc, AnalysisInputError):
            raise
        raise AnalysisInputError(f"cannot read {source} ({exc}); check that it is a valid table") from exc
    if table.empty:
        raise AnalysisInputError(f"{source} has no rows: nothing to fit")
    return table, None
