"""scripts/gpu-check.sh --tiny: every step runs (or is skipped for want of CUDA) and leaves its numbers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_tiny_writes_every_step_to_the_json(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(REPO / "scripts" / "gpu-check.sh"), "--tiny"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["mode"] == "tiny" and "mfu_formula" in report
    steps = report["steps"]
    assert set(steps) == {
        "train_ddp",
        "train_ddp_full_logits",
        "train_ddp_foreach",
        "train_ddp_compile",
        "train_ddp_bf16_tower",
        "train_zero2",
        "train_zero3",
        "prefill",
        "loss_memory",
        "loader",
        "pytest_gpu",
    }

    train = steps["train_ddp"]
    assert train["status"] == "ok" and train["steps"] == 6
    assert train["tokens_per_s"] > 0 and train["model_flops_per_step"] > train["six_n_flops_per_step"] > 0
    assert train["tokens_per_step"] == train["batch"] * train["seq_len"]
    median, fastest, slowest = train["step_seconds_median_min_max"]
    assert 0 < fastest <= median <= slowest and "profile_top_ops" not in train  # profiling is opt-in

    # one change each against train_ddp; compile is timed on a GPU only (tests/train/test_lit_step.py on CPU)
    for name, change in (
        ("train_ddp_full_logits", {"loss": "full"}),
        ("train_ddp_foreach", {"fused": False}),
        ("train_ddp_bf16_tower", {"tower_dtype": "bfloat16"}),
    ):
        assert steps[name]["status"] == "ok" and steps[name]["variant"] == change, name
        assert steps[name]["loss_first"] == pytest.approx(train["loss_first"], rel=0.05), name
    assert train["variant"] == {} and "foreach" in train["optimizer"]  # CPU: the foreach AdamW
    assert "'foreach': True" in steps["train_ddp_foreach"]["optimizer"]
    if not report["environment"]["cuda"]:
        assert steps["train_ddp_compile"]["status"] == "skipped"

    memory = steps["loss_memory"]
    assert memory["status"] == "ok" and memory["loss_diff"] < 1e-5
    assert memory["new"]["answer_positions"] < memory["old"]["positions"]
    loader = steps["loader"]
    assert loader["status"] == "ok" and set(loader["items_per_s"]) == {"0", "1"}
    assert all(rate > 0 for rate in loader["items_per_s"].values())

    for name in ("train_zero2", "train_zero3"):
        if report["environment"]["cuda"]:
            assert steps[name]["status"] in ("ok", "skipped")
        else:
            assert steps[name] == {
                "status": "skipped",
                "reason": "skipped: no CUDA (DeepSpeed needs a GPU)",
            } | {"seconds": steps[name]["seconds"]}

    prefill = steps["prefill"]
    assert prefill["status"] == "ok" and set(prefill["per_T"]) == {"1", "256"}
    # the accounting's ratios: QueCC at full T costs more, the paper's 2N(Q+T) ratio is exactly (Q+256)/(Q+1)
    q = prefill["text_tokens"]
    assert prefill["flops_ratio_paper"] == pytest.approx((q + 256) / (q + 1))
    assert 1 < prefill["flops_ratio_full"] < prefill["flops_ratio_paper"]
    latencies = [b for row in prefill["per_T"].values() for b in row["latency"].values()]
    assert all(b["median_ms"] > 0 and b["images_median_ms"] > 0 for b in latencies)
    assert prefill["flops_ratio_llm"] > prefill["flops_ratio_full"]  # the image side is the same at every T

    assert steps["pytest_gpu"]["status"] == "ok"
    assert "skipped" in steps["pytest_gpu"]["summary"] or "passed" in steps["pytest_gpu"]["summary"]
    assert "train_ddp" in proc.stdout and "prefill" in proc.stdout
