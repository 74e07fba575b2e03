"""The throughput table (vlmscale/throughput.py): rows converted from the GPU check's report, the FLOPs model
that both write and read it, and how a point between or beyond the rows is priced."""

import json
import sys
from pathlib import Path

import pytest

from vlmscale import throughput

REPO = Path(__file__).resolve().parents[1]
REPORT = json.loads((REPO / "docs" / "gpu" / "gpu-check-h200.json").read_text())


def test_the_seeded_table_is_the_h200_report_converted():
    table = throughput.read_table()
    converted = throughput.rows_from_report(REPORT, source="docs/gpu/gpu-check-h200.json")
    assert {(r["device"], r["strategy"]) for r in converted} == {
        ("H200", "ddp"),
        ("H200", "zero2"),
        ("H200", "zero3"),
    }
    for row in converted:
        assert row in table
        measured = REPORT["steps"][f"train_{row['strategy']}"]
        # achieved FLOP/s per GPU: the report's own figure, nothing re-derived
        assert throughput.achieved_flops(row) == pytest.approx(measured["achieved_tflops"] * 1e12, rel=1e-9)
        assert row["llm_params"] == 463_987_712 and row["positions"] == 511 and row["micro_batch"] == 16


def test_the_gpu_checks_flops_are_the_plans_flops():
    """benchmarks/gpu_check.step_flops now goes through vlmscale.flops.training_flops: on the meta device, at the
    H200 shape, it gives exactly the model FLOPs the report recorded."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_check

    sizes = gpu_check.shape(tiny=False)
    vlm = gpu_check.build_model(sizes, sizes["visual_tokens"], "float32", device="meta")
    flops = gpu_check.step_flops(vlm, sizes)
    assert flops["model_flops_per_step"] == REPORT["steps"]["train_ddp"]["model_flops_per_step"]
    assert flops["six_n_flops_per_step"] == REPORT["steps"]["train_ddp"]["six_n_flops_per_step"]


def row(flops_per_step, seconds, n=1e9, t=16, micro=4, positions=100):
    return {
        "device": "X",
        "strategy": "ddp",
        "gpus": 1,
        "llm": f"n{n:g}",
        "llm_params": n,
        "visual_tokens": t,
        "micro_batch": micro,
        "positions": positions,
        "model_flops_per_step": flops_per_step,
        "step_seconds": seconds,
        "source": "test",
    }


def test_between_rows_the_achieved_rate_is_interpolated_in_log_flops_and_held_beyond():
    # 4 samples per step: 1e12 and 1e14 FLOPs per sample, achieved 100 and 300 TFLOP/s
    table = [row(4e12, 0.04, n=1e9), row(4e14, 4e14 / 3e14, n=1e11)]
    middle = throughput.estimate(table, "X", "ddp", 1e13, 1e10, 16, 4)
    assert middle.basis == "interpolated" and middle.flops_per_s == pytest.approx(200e12)  # halfway in log
    beyond = throughput.estimate(table, "X", "ddp", 1e15, 1e12, 64, 4)
    assert beyond.flops_per_s == pytest.approx(300e12)
    assert beyond.basis == "extrapolated (N x10, T 64 vs 16)"
    same = throughput.estimate(table, "X", "ddp", 1e12, 1e9, 16, 4, positions=105)
    assert same.basis == "measured" and same.flops_per_s == pytest.approx(100e12)
    assert throughput.estimate(table, "X", "zero3", 1e13, 1e10, 16, 4) is None  # no row of that strategy


def test_appending_replaces_a_row_of_the_same_measurement(tmp_path):
    path = tmp_path / "t.json"
    throughput.append_rows(path, [row(1e12, 1.0), row(1e12, 1.0, t=64)])
    throughput.append_rows(path, [row(1e12, 2.0)])
    table = throughput.read_table(path)
    assert len(table) == 2 and {r["step_seconds"] for r in table if r["visual_tokens"] == 16} == {2.0}


@pytest.mark.parametrize(
    "name,kind",
    [
        ("NVIDIA H200", "H200"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
        (None, "cpu"),
    ],
)
def test_device_names_map_to_the_kinds_cluster_gpu_uses(name, kind):
    assert throughput.device_kind(name) == kind
