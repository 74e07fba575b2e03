"""QueCC query: prefix vs separate on the embedded suite: mean error over seeds with its standard error.

    python scripts/prefix_accuracy.py RUNS_DIR

RUNS_DIR holds run folders named <mode>-T<T>-s<seed> (mode: separate | prefix), each with its result.json, as
written by the loop in docs/PREFIX.md. Prints markdown tables (no torch needed).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path


def collect(root: Path) -> dict[tuple[int, str], list[dict]]:
    """(T, mode) -> [{seed, reasoning, ocr}, ...] over the runs that ended done."""
    runs: dict[tuple[int, str], list[dict]] = {}
    for path in sorted(root.glob("*-T*-s*/result.json")):
        record = json.loads(path.read_text())
        if record["status"] != "done":
            continue
        mode, tokens, seed = path.parent.name.split("-")
        metrics = record["metrics"]
        runs.setdefault((int(tokens[1:]), mode), []).append(
            {"seed": int(seed[1:]), "reasoning": metrics["error/reasoning"], "ocr": metrics["error/ocr"]}
        )
    return runs


def mean_se(values: list[float]) -> tuple[float, float]:
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return statistics.mean(values), se


def main(root: Path) -> None:
    runs = collect(root)
    print("| T | query | seeds | reasoning error (mean ± SE) | per seed | OCR error (mean ± SE) |")
    print("|---|---|---|---|---|---|")
    for (tokens, mode), rows in sorted(runs.items()):
        rows.sort(key=lambda r: r["seed"])
        reasoning, reasoning_se = mean_se([r["reasoning"] for r in rows])
        ocr, ocr_se = mean_se([r["ocr"] for r in rows])
        seeds = ", ".join(f"{r['reasoning']:.3f}" for r in rows)
        print(
            f"| {tokens} | {mode} | {len(rows)} | {reasoning:.3f} ± {reasoning_se:.3f} | {seeds} "
            f"| {ocr:.3f} ± {ocr_se:.3f} |"
        )
    print("\n| T | prefix − separate, reasoning error (± SE) | difference / SE |")
    print("|---|---|---|")
    for tokens in sorted({t for t, _ in runs}):
        prefix, prefix_se = mean_se([r["reasoning"] for r in runs[(tokens, "prefix")]])
        separate, separate_se = mean_se([r["reasoning"] for r in runs[(tokens, "separate")]])
        diff, se = prefix - separate, math.hypot(prefix_se, separate_se)
        print(f"| {tokens} | {diff:+.3f} ± {se:.3f} | {diff / se:+.1f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/prefix_runs"))
