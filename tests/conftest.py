"""Shared test set-up: one torch thread (two processes x two threads on two cores crawl), offline HF, the
feature cache off unless a test asks for it."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The feature cache is off unless a test turns it on (vision.feature_cache=auto|on): in each test's fresh
# cache folder it would compute the tiny tower's output for the whole default suite (2.2 GB) for a few steps.
os.environ.setdefault("VLMSCALE_FEATURE_CACHE", "off")

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

try:
    import torch  # noqa: E402

    torch.set_num_threads(1)
except ImportError:  # analysis-only environments have no torch
    pass


def _slurm_available() -> bool:
    return shutil.which("sbatch") is not None and shutil.which("sinfo") is not None


def pytest_collection_modifyitems(config, items):
    """SLURM tests skip without a cluster, except where VLMSCALE_REQUIRE_SLURM=1 (CI): there they must run."""
    if _slurm_available() or os.environ.get("VLMSCALE_REQUIRE_SLURM") == "1":
        return
    skip = pytest.mark.skip(reason="no SLURM here (start one with: scripts/slurm-local.sh up)")
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("vlmscale-cache")


@pytest.fixture
def run_cli(cache_dir):
    def run(*overrides, check=True, timeout=600, background=False):
        """`python -m vlmscale.train *overrides` in a subprocess (the real CLI), one thread, offline."""
        env = dict(os.environ, VLMSCALE_CACHE=str(cache_dir), OMP_NUM_THREADS="1", HYDRA_FULL_ERROR="1")
        cmd = [sys.executable, "-m", "vlmscale.train", *overrides]
        if background:
            return subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
            )
        return proc

    return run
