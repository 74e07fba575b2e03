"""result.json: atomic, hash-stable, NaN-safe, and safe under many concurrent writers."""

import json
import math
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from vlmscale.results import (
    config_hash,
    is_done,
    read_result,
    result_hash,
    training_hash,
    write_json_atomic,
    write_result,
)


def test_config_hash_ignores_non_semantic_keys_only():
    cfg = {
        "llm": {"name": "tiny-s"},
        "visual_tokens": 4,
        "threads": 1,
        "resume": "auto",
        "paths": {"a": 1},
        "data": {"cache_dir": "/a", "seed": 0},
    }
    same = dict(cfg, threads=8, resume="never", paths={"a": 2}, data={"cache_dir": "/b", "seed": 0})
    other = dict(cfg, visual_tokens=16)
    other_data = dict(cfg, data={"cache_dir": "/a", "seed": 1})
    assert config_hash(cfg) == config_hash(same)
    assert config_hash(cfg) != config_hash(other)
    assert config_hash(cfg) != config_hash(other_data)
    assert len(config_hash(cfg)) == 16


RUN = {
    "llm": {"name": "tiny-s"},
    "visual_tokens": 4,
    "optim": {"lr": 1e-3},
    "trainer": {"max_steps": 8, "enable_progress_bar": True, "val_check_interval": 4},
    "loader": {"batch_size": 16, "eval_batch_size": 32},
    "eval": {"tasks": ["synthetic"], "limit": None},
    "eval_during_training": {"generate": True},
    "checkpoint": {"every_n_train_steps": 50},
}


def _changed(dotted: str, value):
    head, _, key = dotted.partition(".")
    return {**RUN, head: {**RUN[head], key: value}} if key else {**RUN, head: value}


@pytest.mark.parametrize(
    "change",
    [
        ("eval", {"tasks": ["gqa"], "limit": None}),
        ("eval.limit", 16),
        ("eval_during_training.generate", False),
        ("checkpoint.every_n_train_steps", 10),
        ("loader.eval_batch_size", 8),
    ],
)
def test_evaluation_settings_change_the_result_hash_only(change):
    other = _changed(*change)
    assert training_hash(other) == training_hash(RUN)
    assert result_hash(other) != result_hash(RUN)


@pytest.mark.parametrize(
    "change",
    [
        ("optim.lr", 2e-3),
        ("visual_tokens", 16),
        ("trainer.max_steps", 9),
        ("trainer.val_check_interval", 2),  # a validation loader draws from the global RNG
        ("loader.batch_size", 8),
    ],
)
def test_training_settings_change_both_hashes(change):
    other = _changed(*change)
    assert training_hash(other) != training_hash(RUN)
    assert result_hash(other) != result_hash(RUN)


def test_display_settings_change_neither_hash():
    other = _changed("trainer.enable_progress_bar", False)
    assert (training_hash(other), result_hash(other)) == (training_hash(RUN), result_hash(RUN))


def test_write_result_round_trip_and_nan_metrics(tmp_path):
    write_result(
        tmp_path, {"status": "done", "config_hash": "abc", "metrics": {"error/avg": float("nan"), "x": 0.5}}
    )
    result = read_result(tmp_path)
    assert result["schema"] == 1
    assert result["metrics"] == {"error/avg": None, "x": 0.5}
    assert result["nan_metrics"] == ["error/avg"]
    assert is_done(tmp_path, "abc") and not is_done(tmp_path, "other")
    assert not list(tmp_path.glob(".*.tmp")), "temp files must not be left behind"


def test_corrupt_result_is_named_and_not_done(tmp_path):
    (tmp_path / "result.json").write_text('{"status": "do')
    with pytest.raises(ValueError, match=str(tmp_path / "result.json")):
        read_result(tmp_path)
    assert not is_done(tmp_path, "abc")


def test_failed_serialisation_keeps_previous_file(tmp_path):
    write_json_atomic(tmp_path / "result.json", {"status": "done"})
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_json_atomic(tmp_path / "result.json", {"status": object()})
    assert json.loads((tmp_path / "result.json").read_text()) == {"status": "done"}
    assert not list(tmp_path.glob(".*.tmp"))


def _writer(args):
    sweep, i, repeats = args
    for r in range(repeats):
        # each point writes its own folder; all also hammer one shared file
        write_result(
            Path(sweep) / f"llm=p{i}" / "T=1" / "seed=0",
            {"status": "done", "i": i, "r": r, "metrics": {"error/avg": i / 100}},
        )
        write_json_atomic(Path(sweep) / "shared.json", {"i": i, "r": r, "pad": "x" * 4096})
    return os.getpid()


def test_fifty_concurrent_writers_lose_nothing(tmp_path):
    with mp.get_context("fork").Pool(50) as pool:
        pids = pool.map(_writer, [(str(tmp_path), i, 5) for i in range(50)])
    assert len(set(pids)) > 1
    files = sorted(tmp_path.glob("llm=*/T=1/seed=0/result.json"))
    assert len(files) == 50
    rows = [json.loads(f.read_text()) for f in files]
    assert sorted(r["i"] for r in rows) == list(range(50))
    assert all(r["r"] == 4 and math.isclose(r["metrics"]["error/avg"], r["i"] / 100) for r in rows)
    shared = json.loads((tmp_path / "shared.json").read_text())  # one whole write, never a torn mix
    assert shared["pad"] == "x" * 4096 and 0 <= shared["i"] < 50
    assert not list(tmp_path.rglob(".*.tmp"))
