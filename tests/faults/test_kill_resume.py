"""kill -9 and SIGTERM at several points of one run, each followed by the same command again: the run ends
bitwise where the uninterrupted run ends (weights, optimizer and scheduler state, every step's train/loss,
final metrics and predictions), and the training history of every attempt is still on disk.

One run folder takes all the faults of one signal in turn (mid-step, while a checkpoint is written, during
the final eval, while result.json is written), so the whole story costs a few short processes. The
uninterrupted run is a process of its own too, started the same way: nothing in the pytest process (its
thread count, what other tests set) can make the two differ. One thread each, on the CPU: the same
reductions in the same order, so bitwise equality is the bar (tests/faults/test_exact_resume.py explains
what else a step depends on)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from resume_checks import assert_resumed_exactly

from vlmscale.checkpoints import read_stamps

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
    """The uninterrupted run's folder."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    code, out = attempt(run_dir, cache_dir)
    assert code == 0, out
    return run_dir


def attempt(run_dir, cache_dir, fault=None, sig="KILL"):
    """One attempt of the run, with a fault (`crash.py` point) or none: (exit code, output)."""
    env = dict(os.environ, VLMSCALE_CACHE=str(cache_dir), OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1")
    head = [str(CRASH), fault, sig] if fault else ["-m", "vlmscale.train"]
    cmd = [sys.executable, *head, *COMMON, f"run_dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def last_step(run_dir):
    return read_stamps(run_dir / "checkpoints" / "last.ckpt")["global_step"]


def assert_resumed_exactly_with_every_attempt_logged(run_dir, reference, attempts):
    assert_resumed_exactly(run_dir, reference, STEPS)
    assert len(list(run_dir.glob("logs/version_*/metrics.csv"))) == attempts, "one log folder per attempt"


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
    assert_resumed_exactly_with_every_attempt_logged(run_dir, reference, attempts=5)


def test_sigterm_at_every_point_then_resume(tmp_path, cache_dir, reference):
    run_dir = tmp_path / "run"
    code, out = attempt(run_dir, cache_dir, "step:2", "TERM")  # arrives in step 3: it ends, then it stops
    assert code == 143 and "SIGTERM: saved" in out, out
    assert last_step(run_dir) == 3  # saved where it stopped, off the every-2-steps cadence

    code, out = attempt(run_dir, cache_dir, "checkpoint:6", "TERM")  # the save completes, then it stops
    assert code == 143 and last_step(run_dir) == 6, out

    # After training, Lightning's SIGTERM handler is gone: the signal's default action ends the process
    # where it is, with nothing recorded (the checkpoint of step 8 is whole; the next attempt evaluates it).
    code, out = attempt(run_dir, cache_dir, "eval", "TERM")
    assert code == -signal.SIGTERM, out
    assert "resuming from" in out and "eval synthetic: 8 questions" in out  # steps 7-8, then the eval
    assert "error 1" not in out and "result (" not in out and "Traceback" not in out
    assert not (run_dir / "result.json").exists()

    code, out = attempt(run_dir, cache_dir, "result", "TERM")
    assert code == -signal.SIGTERM, out
    assert "eval synthetic: error" in out and "result (" not in out and "Traceback" not in out
    # killed between the temp file's write and its rename: the temp file is there, result.json is not
    assert not (run_dir / "result.json").exists() and list(run_dir.glob(".result.json.*.tmp"))

    code, out = attempt(run_dir, cache_dir)
    assert code == 0, out
    assert "no retraining" in out
    assert_resumed_exactly_with_every_attempt_logged(run_dir, reference, attempts=5)
