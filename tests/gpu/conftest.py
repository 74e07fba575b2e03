"""CUDA tests (marked gpu): every test here skips cleanly without a GPU. `scripts/gpu-check.sh` runs them."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)
