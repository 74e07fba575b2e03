"""The GPU path. Tests marked gpu skip cleanly without CUDA (`scripts/gpu-check.sh` runs them); the others
check its CPU-testable parts."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if item.get_closest_marker("gpu") and not torch.cuda.is_available():
            item.add_marker(skip)
