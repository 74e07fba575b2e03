"""Checks shared by the resume tests: two runs of one config left the same training state and history.

"The same" means bitwise: every tensor `torch.equal` (same dtype, same shape, same values), every other value
`==`. The only difference allowed between two checkpoints is the run folder they were written in (Lightning's
ModelCheckpoint records its own `dirpath`), which is replaced by `<run>` before comparing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch

LAST = Path("checkpoints") / "last.ckpt"


def _load(run_dir: Path) -> dict[str, Any]:
    return torch.load(Path(run_dir) / LAST, map_location="cpu", weights_only=True)


def checkpoint_differences(got: Any, want: Any, got_dir: str, want_dir: str, path: str = "") -> list[str]:
    """Every place where two checkpoint trees differ, as `path: what` lines ([] when bitwise equal)."""
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return [f"{path}: {type(got).__name__} where a tensor was expected"]
        if got.dtype != want.dtype or got.shape != want.shape:
            return [f"{path}: {got.dtype}{tuple(got.shape)} != {want.dtype}{tuple(want.shape)}"]
        if not torch.equal(got, want):
            gap = (got.double() - want.double()).abs().max().item() if got.is_floating_point() else "?"
            return [f"{path}: values differ (max |diff| {gap})"]
        return []
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: {type(got).__name__} where a dict was expected"]
        out = [f"{path}/{k}: only in one checkpoint" for k in sorted(set(got) ^ set(want), key=str)]
        for key in want:
            if key in got:
                out += checkpoint_differences(got[key], want[key], got_dir, want_dir, f"{path}/{key}")
        return out
    if isinstance(want, list | tuple):
        if not isinstance(got, list | tuple) or len(got) != len(want):
            return [f"{path}: {got!r:.80} != {want!r:.80}"]
        out = []
        for i, (g, w) in enumerate(zip(got, want)):
            out += checkpoint_differences(g, w, got_dir, want_dir, f"{path}[{i}]")
        return out
    if isinstance(want, str) and isinstance(got, str):
        got, want = got.replace(got_dir, "<run>"), want.replace(want_dir, "<run>")
    if isinstance(want, float) and isinstance(got, float) and math.isnan(want) and math.isnan(got):
        return []
    return [] if got == want else [f"{path}: {got!r:.80} != {want!r:.80}"]


def assert_same_training_state(got_run: Path, want_run: Path) -> None:
    """The final `last.ckpt` of two runs: weights, optimizer state (AdamW moments and step counts, param
    groups), lr scheduler, loop counters and callback state all bitwise equal."""
    got, want = _load(got_run), _load(want_run)
    assert got["global_step"] == want["global_step"]
    # what the comparison must cover, so an empty section cannot pass by comparing nothing
    assert want["state_dict"] and want["optimizer_states"][0]["state"] and want["lr_schedulers"]
    diffs = checkpoint_differences(got, want, str(Path(got_run).resolve()), str(Path(want_run).resolve()))
    sections = pd.Series([d.split("/")[1].split(":")[0] for d in diffs]).value_counts().to_dict()
    assert not diffs, (
        f"{len(diffs)} differences from the uninterrupted run (by section: {sections}), first ones:\n"
        + "\n".join(diffs[:8])
    )


def logged(run_dir: Path, column: str) -> pd.DataFrame:
    """Every row of every attempt's CSV log (`logs/version_<n>/metrics.csv`) that has `column`, with the
    attempt's number: columns step, value, attempt."""
    frames = []
    for csv in sorted(Path(run_dir).glob("logs/version_*/metrics.csv")):
        table = pd.read_csv(csv)
        if column in table:
            rows = table.dropna(subset=[column])
            attempt = int(csv.parent.name.removeprefix("version_"))
            frames.append(pd.DataFrame({"step": rows["step"], "value": rows[column], "attempt": attempt}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["step", "value"])


def assert_same_loss_history(got_run: Path, want_run: Path, steps: int) -> None:
    """Each `train/loss` logged by any attempt of `got_run` (a step redone after a kill is logged twice)
    equals exactly the uninterrupted run's value at that step, and together the attempts log every step."""
    want = logged(want_run, "train/loss")
    assert sorted(want["step"]) == list(range(steps)), "the uninterrupted run logs each step once"
    reference = dict(zip(want["step"], want["value"]))
    got = logged(got_run, "train/loss")
    assert set(got["step"]) == set(range(steps)), "every step is in some attempt's history"
    wrong = [
        f"step {int(r.step)} (attempt {r.attempt}): {r.value!r} != {reference[r.step]!r}"
        for r in got.itertuples()
        if r.value != reference[r.step]
    ]
    assert not wrong, "train/loss differs from the uninterrupted run:\n" + "\n".join(wrong)


def assert_same_final_record(got_run: Path, want_run: Path) -> None:
    """result.json metrics equal exactly (not within a tolerance) and the same predictions on disk."""
    got, want = (json.loads((Path(r) / "result.json").read_text()) for r in (got_run, want_run))
    assert got["status"] == want["status"] == "done"
    assert got["steps"] == want["steps"] and got["training_hash"] == want["training_hash"]
    assert got["metrics"] == want["metrics"], f"metrics {got['metrics']} != {want['metrics']}"
    for predictions in sorted(Path(want_run).glob("eval/*.predictions.jsonl")):
        mine = Path(got_run) / "eval" / predictions.name
        assert mine.read_text() == predictions.read_text(), f"{predictions.name} differs"


def assert_resumed_exactly(got_run: Path, want_run: Path, steps: int) -> None:
    """All three: final training state, per-step loss history, final record."""
    assert_same_training_state(got_run, want_run)
    assert_same_loss_history(got_run, want_run, steps)
    assert_same_final_record(got_run, want_run)
