"""Fixtures for the analysis tests: the reference table and synthetic sweep folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "sweeps" / "reference" / "li2024_reasoning.csv"

LLMS = {"tiny-xs": 1.0e6, "tiny-s": 3.0e6, "tiny-m": 1.0e7, "tiny-l": 3.0e7}
TOKENS = (1, 4, 16, 64)
# What every fit reports besides its law and parameters (fit.json and `FitResult.to_dict()` alike).
FIT_STATISTICS = (
    "sse",
    "rmse",
    "r2",
    "aic",
    "bic",
    "loo_rmse",
    "extrapolation",
    "fit_time_s",
    "excluded",
    "n_points",
)


#: Per-image costs beyond 2N(Q+T) written into every fixture result.json (hand-picked, checked in tests).
TOWER_FLOPS = 4.0e8
CONNECTOR_FIXED, CONNECTOR_PER_TOKEN = 1.0e5, 2.0e4
QUERY_TOKENS = 20.0


def _result(llm: str, T: int, seed: int, error, status: str = "done") -> dict:
    reasoning, ocr = error if isinstance(error, tuple) else (error, error)
    return {
        "schema": 1,
        "status": status,
        "error": None
        if status == "done"
        else {"type": "RuntimeError", "message": "boom", "traceback": "Traceback..."},
        "llm": llm,
        "llm_params": LLMS[llm],
        "llm_params_non_embedding": LLMS[llm] * 0.8,
        "visual_tokens": T,
        "text_tokens": 23.4,
        "inference_flops": 2 * LLMS[llm] * (23.4 + T),
        "flops_breakdown": {
            "llm": 2 * LLMS[llm] * (23.4 + T),
            "llm_attention": 1.0e3 * T,
            "vision_tower": TOWER_FLOPS,
            "compressor": CONNECTOR_FIXED,
            "projector_mlp": CONNECTOR_PER_TOKEN * T,
            "query_pass": 2 * LLMS[llm] * QUERY_TOKENS,
        },
        "projector": "quecc",
        "stage": "finetune",
        "seed": seed,
        "metrics": {}
        if status != "done"
        else {
            "error/reasoning": reasoning,
            "error/ocr": ocr,
            "error/avg": (reasoning + ocr) / 2,
            "val/loss": 1.0,
        },
        "wall_time_s": 1.0,
        "config_hash": "abc",
        "git_sha": "def",
        "run_dir": "x",
        "config": {"llm": {"name": llm, "config": {"hidden_size": 32}}, "visual_tokens": T},
    }


def write_sweep(root: Path, error_fn, failed=(), corrupt=(), missing=(), seed: int = 0) -> Path:
    """A sweep folder llm=<name>/T=<T>/seed=<s>/result.json over LLMS x TOKENS."""
    for llm, n in LLMS.items():
        for T in TOKENS:
            run = root / f"llm={llm}" / f"T={T}" / f"seed={seed}"
            run.mkdir(parents=True, exist_ok=True)
            if (llm, T) in missing:
                continue
            path = run / "result.json"
            if (llm, T) in corrupt:
                path.write_text(json.dumps(_result(llm, T, seed, 0.5))[:57])  # half-written
                continue
            status = "failed" if (llm, T) in failed else "done"
            error = error_fn(n, T)
            error = tuple(map(float, error)) if isinstance(error, tuple) else float(error)
            path.write_text(json.dumps(_result(llm, T, seed, error, status)))
    return root


def paper_error(n, T, A=2.0, alpha=0.12, beta=0.03, D=0.05, noise=0.0, rng=None):
    y = A / (n**alpha * T**beta) + D
    if noise:
        y = y + rng.normal(0, noise)
    return y


@pytest.fixture
def sweep_dir(tmp_path):
    """A clean 4 x 4 sweep following the paper law (small noise), one failed, one corrupt, one missing point."""
    rng = np.random.default_rng(0)
    return write_sweep(
        tmp_path / "sweep",
        lambda n, T: paper_error(n, T, noise=0.002, rng=rng),
        failed=[("tiny-s", 4)],
        corrupt=[("tiny-m", 16)],
        missing=[("tiny-l", 1)],
    )


@pytest.fixture
def reference_csv():
    return REFERENCE
