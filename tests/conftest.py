"""Shared test set-up: one torch thread (two processes x two threads on two cores crawl), offline HF."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil  # noqa: E402

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
