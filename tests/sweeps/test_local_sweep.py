"""Sweeps on this machine: the grid runs, a failing point never costs the others, re-runs redo only it,
and a run killed with SIGTERM at a moment nobody chose resumes from its checkpoint to bitwise the state,
history and result of an uninterrupted one."""

import json
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from resume_checks import assert_resumed_exactly
from sweep_helpers import QUICK, REPO, result

pytestmark = pytest.mark.slow


def test_failed_point_leaves_others_done_and_rerun_redoes_only_it(run_cli, tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "+sweep=tiny",
        *QUICK,
        "visual_tokens=1,4,50",
        "seed=0",
        "trainer.max_steps=3",
        f"hydra.sweep.dir={sweep}",
    ]
    first = run_cli(*args, check=False)
    assert first.returncode == 1, "a sweep with a failed point must exit non-zero"
    # the console: one line per point with an ETA, library chatter in the points' log files
    progress = [line for line in first.stdout.splitlines() if re.match(r"\[\d/3\] ", line)]
    assert len(progress) == 3 and all("ETA" in line for line in progress[:2]), first.stdout
    # the bad point starts when a slot frees and fails within seconds: its line may come before the other's
    assert any(
        re.match(r"\[\d/3\] llm=tiny-xs T=50 seed=0 failed: invalid config", line) for line in progress
    )
    assert "Loading weights" not in first.stdout + first.stderr
    ok = [sweep / "llm=tiny-xs" / f"T={t}" / "seed=0" for t in (1, 4)]
    bad = sweep / "llm=tiny-xs" / "T=50" / "seed=0"
    assert [result(d)["status"] for d in ok] == ["done", "done"]
    failed = result(bad)
    assert failed["status"] == "failed" and failed["error"]["type"] == "ConfigError"
    assert "valid values are [1, 4, 16, 64, 256]" in failed["error"]["message"]
    table = pd.read_csv(sweep / "results.csv")
    assert sorted(table["status"]) == ["done", "done", "failed"]
    # the sizes the ETA weighs points by: the steps asked for, the built LLM's own parameter count
    sizes = json.loads((sweep / "points.json").read_text())["sizes"]
    for d in ok:
        record = result(d)
        assert sizes[str(d.relative_to(sweep))] == {
            "steps": 3,
            "llm_params": record["llm_params_non_embedding"],
            "visual_tokens": record["visual_tokens"],
        }

    stamps = {d: (d / "result.json").stat().st_mtime_ns for d in [*ok, bad]}
    time.sleep(0.05)
    second = run_cli(*args, check=False)
    assert second.returncode == 1
    assert all((d / "result.json").stat().st_mtime_ns == stamps[d] for d in ok), "done points must be skipped"
    assert (bad / "result.json").stat().st_mtime_ns != stamps[bad], "the failed point must be re-run"
    assert "[2/3] skipping 2 points already done for this config" in second.stdout

    status = subprocess.run(
        [sys.executable, "-m", "vlmscale.sweep", "status", str(sweep)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and "2 done, 1 failed | none left" in status.stdout, status.stdout


def test_sigterm_mid_run_resumes_to_the_uninterrupted_result(run_cli, tmp_path):
    common = [
        *QUICK,
        "visual_tokens=4",
        "stage=finetune",
        "trainer.max_steps=120",
        "trainer.val_check_interval=60",
        "checkpoint.every_n_train_steps=20",
        "trainer.log_every_n_steps=1",  # every step's loss is compared
        "threads=1",
    ]
    reference = tmp_path / "reference"
    run_cli(*common, f"run_dir={reference}")

    interrupted = tmp_path / "interrupted"
    proc = run_cli(*common, f"run_dir={interrupted}", background=True)
    last = interrupted / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    time.sleep(0.5)  # well inside the next 20 steps
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output[-3000:]
    stopped = re.search(r"SIGTERM: saved .*last\.ckpt at step (\d+)", output)
    assert stopped and 20 <= int(stopped.group(1)) < 120, output[-3000:]
    assert last.exists() and not (interrupted / "result.json").exists()

    resumed = run_cli(*common, f"run_dir={interrupted}")
    assert f"(step {stopped.group(1)})" in resumed.stdout + resumed.stderr  # "resuming from ... (step N)"
    assert_resumed_exactly(interrupted, reference, steps=120)
