"""Measured training throughput, one row per measurement (docs/gpu/throughput.json), and what it says about
shapes that were not measured.

Rows come from the GPU check (`benchmarks/gpu_check.py` appends one per training step it times; `--convert
REPORT` turns an existing report into rows) or from any finished run (`python -m vlmscale.plan --add-row
RUN_DIR`: its fit time and steps over the model FLOPs of its config). A row is a device kind, a strategy and a
shape, with the step time and the model FLOPs of that step (vlmscale.flops.training_flops); its achieved
FLOP/s per GPU is their ratio.

Other shapes: tokens/s scales with FLOPs per token at a fixed MFU, so a point's time is its model FLOPs over the
achieved FLOP/s of the rows of its device kind and strategy, interpolated (log-linear in FLOPs per sample)
between rows and held at the nearest row outside them. `estimate` says which: `measured` (same N, T and
micro-batch), `interpolated`, or `extrapolated` with the distance in N and T from the measured range.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmscale.contract import parse_json
from vlmscale.memory import llm_shape

DEFAULT_TABLE = Path(__file__).resolve().parent.parent / "docs" / "gpu" / "throughput.json"
KEY_FIELDS = ("device", "strategy", "gpus", "llm", "visual_tokens", "micro_batch", "positions", "source")


def device_kind(name: str | None) -> str:
    """A device name (torch.cuda.get_device_name, or none for a CPU) -> the kind rows and `cluster.gpu` use."""
    if not name:
        return "cpu"
    upper = name.upper()
    for kind in ("H200", "H100"):
        if kind in upper:
            return kind
    if "A100" in upper:
        return "A100-40GB" if "40GB" in upper else "A100-80GB"
    return name


def rows_from_report(report: Mapping[str, Any], source: str) -> list[dict[str, Any]]:
    """The GPU check's training steps as throughput rows (one GPU each)."""
    env, shape = report.get("environment", {}), report.get("shape", {})
    device = device_kind(env.get("device")) if env.get("cuda") else "cpu"
    llm_params = llm_shape(shape["llm"]).params  # N as the sweep counts it (all parameters)
    rows = []
    for step, result in sorted(report.get("steps", {}).items()):
        if not step.startswith("train_") or result.get("status") != "ok":
            continue
        if step.removeprefix("train_") not in ("ddp", "zero2", "zero3"):
            continue  # a one-change variant of train_ddp (full logits, compile, ...): not how a sweep trains
        rows.append(
            {
                "device": device,
                "strategy": step.removeprefix("train_"),
                "gpus": 1,
                "llm": shape.get("llm", {}).get("name"),
                "llm_params": llm_params,
                "visual_tokens": result["visual_tokens"],
                "stage": "finetune",
                "gradient_checkpointing": False,
                "micro_batch": result["batch"],
                "positions": result["seq_len"],
                "query_tokens": shape.get("query_len"),
                "step_seconds": result["step_seconds"],
                "model_flops_per_step": result["model_flops_per_step"],
                "tokens_per_s": result["tokens_per_s"],
                "mfu": result.get("mfu"),
                "peak_memory_gib": result.get("peak_memory_gib"),
                "timed_steps": result.get("timed_steps"),
                "software": {k: env.get(k) for k in ("torch", "lightning", "transformers", "deepspeed")},
                "source": source,
            }
        )
    return rows


def read_table(path: str | Path = DEFAULT_TABLE) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    try:
        return parse_json(path.read_text(), list)
    except ValueError as err:
        raise ValueError(
            f"{path}: {err}; fix or delete the file (rows are re-made by the GPU check)"
        ) from None


def append_rows(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Add rows to the table at `path` (a row with the same key fields replaces the old one); atomic."""
    table = read_table(path)
    for row in rows:
        key = tuple(row.get(k) for k in KEY_FIELDS)
        table = [r for r in table if tuple(r.get(k) for k in KEY_FIELDS) != key] + [dict(row)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(
        fd, "w"
    ) as fh:  # written whole beside it, then moved over it: readers see one or the other
        fh.write(json.dumps(table, indent=2) + "\n")
    os.replace(tmp, path)
    return table


def achieved_flops(row: Mapping[str, Any]) -> float:
    """Model FLOP/s per GPU the row measured."""
    return float(row["model_flops_per_step"]) / float(row["step_seconds"]) / int(row.get("gpus", 1))


@dataclass(frozen=True)
class Estimate:
    flops_per_s: float  # per GPU
    basis: str  # measured | interpolated | extrapolated ...
    rows: tuple[int, ...]  # indices into the table

    @property
    def extrapolated(self) -> bool:
        return self.basis.startswith("extrapolated")


def estimate(
    table: Sequence[Mapping[str, Any]],
    device: str,
    strategy: str,
    flops_per_sample: float,
    llm_params: float,
    visual_tokens: int,
    micro_batch: int,
    positions: float | None = None,
) -> Estimate | None:
    """Achieved FLOP/s per GPU for a point, from the rows of its device kind and strategy (None: no row).
    `measured`: a row of the same N, T, micro-batch and (within 10%) positions per sample."""
    rows = [
        (i, r) for i, r in enumerate(table) if r.get("device") == device and r.get("strategy") == strategy
    ]
    if not rows:
        return None
    sample = {i: float(r["model_flops_per_step"]) / int(r["micro_batch"]) for i, r in rows}
    for i, r in rows:
        same_shape = int(r["visual_tokens"]) == int(visual_tokens) and int(r["micro_batch"]) == int(
            micro_batch
        )
        same_length = positions is None or math.isclose(float(r["positions"]), positions, rel_tol=0.1)
        if same_shape and same_length and math.isclose(float(r["llm_params"]), llm_params, rel_tol=0.02):
            return Estimate(achieved_flops(r), "measured", (i,))
    ordered = sorted(rows, key=lambda ir: sample[ir[0]])
    x = math.log(flops_per_sample)
    low = [ir for ir in ordered if math.log(sample[ir[0]]) <= x]
    high = [ir for ir in ordered if math.log(sample[ir[0]]) >= x]
    if low and high:
        (i, a), (j, b) = low[-1], high[0]
        xa, xb = math.log(sample[i]), math.log(sample[j])
        w = 0.0 if xb == xa else (x - xa) / (xb - xa)
        value = (1 - w) * achieved_flops(a) + w * achieved_flops(b)
        return Estimate(value, "interpolated", (i, j))
    i, nearest = (low or high)[-1 if low else 0]
    return Estimate(achieved_flops(nearest), _distance(rows, llm_params, visual_tokens, positions), (i,))


def _distance(rows, llm_params: float, visual_tokens: int, positions: float | None = None) -> str:
    """'extrapolated' with how far N and T lie outside the measured ones (e.g. N x16.6, T 576 vs 36)."""
    ns = [float(r["llm_params"]) for _, r in rows]
    ts = [int(r["visual_tokens"]) for _, r in rows]
    parts = []
    if not min(ns) * 0.98 <= llm_params <= max(ns) * 1.02:
        ref = min(ns) if llm_params < min(ns) else max(ns)
        parts.append(f"N x{llm_params / ref:.3g}")
    if not min(ts) <= visual_tokens <= max(ts):
        parts.append(
            f"T {visual_tokens} vs {min(ts)}-{max(ts)}"
            if min(ts) != max(ts)
            else f"T {visual_tokens} vs {ts[0]}"
        )
    lengths = sorted({round(float(r["positions"])) for _, r in rows})
    if positions is not None and not lengths[0] * 0.9 <= positions <= lengths[-1] * 1.1:
        measured = f"{lengths[0]}-{lengths[-1]}" if len(lengths) > 1 else f"{lengths[0]}"
        parts.append(f"{positions:.0f} positions vs {measured}")
    return "extrapolated" + (f" ({', '.join(parts)})" if parts else " (micro-batch)")
