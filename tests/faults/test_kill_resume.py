"""kill -9 and SIGTERM at several points of one run, each followed by the same command again: the run ends
with the uninterrupted run's result, and the training history of every attempt is still on disk.

One run folder takes all the faults of one signal in turn (mid-step, while a checkpoint is written, during
the final eval, while result.json is written), so the whole story costs a few short processes."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from vlmscale.checkpoints import read_stamps
from vlmscale.results import read_result
from vlmscale.train import run

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CRASH = Path(__file__).with_name("crash.py")
STEPS = 8
COMMON = [
    "llm=tiny-xs",
    "visual_tokens=4",
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=4",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "checkpoint.every_n_train_steps=2",
    "eval_during_training.generate=false",
    "eval.limit=8",
    "eval.progress=false",
    "data.progress=false",
    "threads=1",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
    """The uninterrupted run (in this process: same code, one interpreter start saved)."""
    run_dir = tmp_path_factory.mktemp("reference")
    overrides = [*COMMON, f"paths.cache_dir={cache_dir}", f"run_dir={run_dir}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return run(compose("train", overrides=overrides))


def attempt(run_dir, cache_dir, fault=None, sig="KILL"):
    """One attempt of the run, with a fault (`crash.py` point) or none: (exit code, output)."""
    env = dict(os.environ, VLMSCALE_CACHE=str(cache_dir), OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1")
    head = [str(CRASH), fault, sig] if fault else ["-m", "vlmscale.train"]
    cmd = [sys.executable, *head, *COMMON, f"run_dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def last_step(run_dir):
    return read_stamps(run_dir / "checkpoints" / "last.ckpt")["global_step"]


def assert_same_result_and_whole_history(run_dir, reference, attempts):
    got = read_result(run_dir)
    assert got["status"] == "done" and got["steps"] == reference["steps"] == STEPS
    assert got["training_hash"] == reference["training_hash"]
    assert got["metrics"]["val/loss"] == pytest.approx(reference["metrics"]["val/loss"], abs=1e-3)
    for key in ("error/reasoning", "error/avg"):
        assert got["metrics"][key] == pytest.approx(reference["metrics"][key], abs=0.13)  # one of 8 questions
    csvs = got["logs"]["csv"]
    assert len(csvs) == attempts, "one log folder per attempt, none deleted"
    history = pd.concat([pd.read_csv(run_dir / c) for c in csvs])
    assert set(history.dropna(subset=["train/loss"])["step"]) == set(range(STEPS)), "every step is logged"


def test_kill_9_at_every_point_then_resume(tmp_path, cache_dir, reference):
    run_dir = tmp_path / "run"
    code, out = attempt(run_dir, cache_dir, f"step:{5}")
    assert code == -signal.SIGKILL, out
    assert last_step(run_dir) == 4 and not (run_dir / "result.json").exists()

    code, out = attempt(run_dir, cache_dir, "checkpoint:6")  # dies with the step-6 checkpoint half written
    assert code == -signal.SIGKILL, out
    assert "resuming from" in out and last_step(run_dir) == 4, "the last good checkpoint stays whole"

    code, out = attempt(run_dir, cache_dir, "eval")
    assert code == -signal.SIGKILL and last_step(run_dir) == STEPS and not (run_dir / "result.json").exists()

    code, out = attempt(run_dir, cache_dir, "result")
    assert code == -signal.SIGKILL and "evaluating it again, no retraining" in out
    assert not (run_dir / "result.json").exists()

    code, out = attempt(run_dir, cache_dir)
    assert code == 0, out
    assert "no retraining" in out
    assert_same_result_and_whole_history(run_dir, reference, attempts=5)


def test_sigterm_at_every_point_then_resume(tmp_path, cache_dir, reference):
    run_dir = tmp_path / "run"
    code, out = attempt(run_dir, cache_dir, "step:2", "TERM")  # arrives in step 3: it ends, then it stops
    assert code == 143 and "SIGTERM: saved" in out, out
    assert last_step(run_dir) == 3  # saved where it stopped, off the every-2-steps cadence

    code, out = attempt(run_dir, cache_dir, "checkpoint:6", "TERM")  # the save completes, then it stops
    assert code == 143 and last_step(run_dir) == 6, out

    code, out = attempt(run_dir, cache_dir, "eval", "TERM")
    assert code != 0 and not (run_dir / "result.json").exists(), out

    code, out = attempt(run_dir, cache_dir, "result", "TERM")
    assert code != 0 and not (run_dir / "result.json").exists(), out

    code, out = attempt(run_dir, cache_dir)
    assert code == 0, out
    assert_same_result_and_whole_history(run_dir, reference, attempts=5)
