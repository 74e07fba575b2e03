"""Helpers for end-to-end sweep tests: the real CLI in a subprocess, tiny settings, one thread each."""

import os
import subprocess
import sys

import pytest
from sweep_helpers import REPO


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("vlmscale-cache")


@pytest.fixture
def run_cli(cache_dir):
    def run(*overrides, check=True, timeout=600, background=False):
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
