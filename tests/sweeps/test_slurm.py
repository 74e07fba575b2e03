"""The sweep on a real SLURM cluster (scripts/slurm-local.sh up): a job array through hydra-submitit-launcher,
and a job requeued mid-run that resumes from its checkpoint and ends with one result."""

import subprocess
import sys
import time

import pandas as pd
import pytest
from resume_checks import assert_resumed_exactly
from sweep_helpers import QUICK, REPO, result

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM = ["+sweep=tiny", "hydra/launcher=slurm", "hydra.launcher.timeout_min=15"]


def squeue_ids() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout
    return out.split()


def release_when_pending(job: str, timeout: float = 120) -> None:
    """SLURM holds a requeued job back (BeginTime, set once the job has left the node): once it is pending
    again, let it start now. An update sent while the job still runs is accepted and then overwritten."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True)
        if state.stdout.strip() == "PENDING":
            update = ["scontrol", "update", f"jobid={job}", "StartTime=now"]
            if subprocess.run(update, capture_output=True).returncode == 0:
                return
        time.sleep(0.2)


def test_reduced_grid_runs_as_a_job_array(run_cli, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        *SLURM,
        *QUICK,
        "llm=tiny-xs,tiny-s",
        "visual_tokens=1,4",
        "seed=0",
        "trainer.max_steps=5",
        f"hydra.sweep.dir={sweep}",
    )
    runs = sorted(sweep.glob("llm=*/T=*/seed=0"))
    assert len(runs) == 4
    assert all(result(r)["status"] == "done" for r in runs)
    # one array: every job id is <array>_<index> of the same array
    job_dirs = [p.name for p in (sweep / ".submitit").iterdir() if p.is_dir() and "_" in p.name]
    assert len({d.split("_")[0] for d in job_dirs}) == 1 and len(job_dirs) == 4, job_dirs
    table = pd.read_csv(sweep / "results.csv")
    assert len(table) == 4 and set(table["status"]) == {"done"}
    assert set(table["llm"]) == {"tiny-xs", "tiny-s"} and set(table["visual_tokens"]) == {1, 4}
    assert "metrics.error/avg" in table.columns
    # threads pinned from the job's allocation (cpus_per_task=1)
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.*"))
    assert "threads=1" in logs, proc.stdout[-2000:]
    # followed from the launching console, and from the folder alone
    assert "as a SLURM job array" in proc.stdout and "[4/4] llm=tiny-" in proc.stdout, proc.stdout[-2000:]
    status = subprocess.run(
        [sys.executable, "-m", "vlmscale.sweep", "status", str(sweep)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert status.stdout.splitlines()[-1] == f"{sweep}: 4 points: 4 done, 0 failed | none left", status.stdout
    assert all((sweep / r / ".hydra" / "job.json").is_file() for r in runs)


def test_requeued_job_resumes_from_its_checkpoint(run_cli, tmp_path):
    common = [
        *QUICK,
        "visual_tokens=4",
        "seed=0",
        "stage=finetune",
        "trainer.max_steps=120",
        "trainer.val_check_interval=60",
        "checkpoint.every_n_train_steps=20",
        "trainer.log_every_n_steps=1",  # every step's loss is compared
    ]
    # The reference is the same point of the same sweep run here by the local launcher: one config, one
    # thread each (the job's from SLURM_CPUS_PER_TASK=1, the reference's from the sweep's threads=1).
    reference_sweep = tmp_path / "reference"
    run_cli("+sweep=tiny", *common, f"hydra.sweep.dir={reference_sweep}")
    reference = reference_sweep / "llm=tiny-xs" / "T=4" / "seed=0"

    sweep = tmp_path / "sweep"
    proc = run_cli(*SLURM, *common, f"hydra.sweep.dir={sweep}", background=True)
    run_dir = sweep / "llm=tiny-xs" / "T=4" / "seed=0"
    deadline = time.time() + 300
    while not (run_dir / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.2)
    jobs = squeue_ids()
    assert len(jobs) == 1, jobs
    subprocess.run(["scontrol", "requeue", jobs[0]], check=True)
    release_when_pending(jobs[0])
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]

    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.*"))
    assert "SIGTERM: saved" in logs and "resuming from" in logs
    assert result(run_dir)["config_hash"] == result(reference)["config_hash"]
    assert_resumed_exactly(run_dir, reference, steps=120)
    assert len(list(sweep.rglob("result.json"))) == 1
