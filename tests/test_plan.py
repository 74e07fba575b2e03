"""python -m vlmscale.plan: a sweep's cost before it launches. Against the H200 GPU check's measured step time,
against a tiny sweep's own measured fit time on this CPU, and the done points of a sweep folder."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from vlmscale import plan, throughput
from vlmscale.contract import to_plain
from vlmscale.results import result_hash, write_result

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(
    r"^\| (llm=\S+) \| (\w+) \| (\w+) \| (\d+) x (\d+) x (\d+) \|.*\| ([\d.e+-]+|n/a) \| ([\d.e+-]+|n/a) \| ([\d.e+-]+|n/a) \| (.+) \|$"
)


def rows(output: str) -> dict[str, re.Match]:
    return {m.group(1): m for m in map(ROW.match, output.splitlines()) if m}


def run_plan(*args):
    return subprocess.run(
        [sys.executable, "-m", "vlmscale.plan", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_the_h200_points_gpu_hours_are_its_measured_step_time_times_its_steps():
    """The done-criterion: the grid point of the GPU check's shape (Qwen1.5-0.5B, T=36, 476 text tokens -> 511
    positions, micro-batch 16, DDP) costs the H200's measured step time x its steps, within 10%."""
    h200 = next(r for r in throughput.read_table() if r["device"] == "H200" and r["strategy"] == "ddp")
    (point,) = plan.plan(
        ["+sweep=grid", "llm=qwen1.5-0.5b", "visual_tokens=36", "cluster.gpu=H200"],
        throughput.DEFAULT_TABLE,
        text_tokens=476,
    )
    assert (point.strategy, point.micro_batch, point.processes) == ("ddp", 16, 8)
    micro_steps_per_gpu = point.steps * point.accumulate  # each of 8 GPUs runs micro-batches of 16
    measured = micro_steps_per_gpu * h200["step_seconds"] * point.processes / 3600
    assert point.gpu_hours == pytest.approx(measured, rel=0.10)
    assert point.estimate.basis == "measured" and point.status == "todo"


def test_the_grid_plan_lists_every_point_its_status_and_the_total(tmp_path):
    sweep = tmp_path / "grid"
    overrides = ["+sweep=grid", f"hydra.sweep.dir={sweep}"]
    # One point already done under this very config (as train.run records it), one done under another config.
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for llm, t, config_hash in (("qwen1.5-0.5b", 1, None), ("qwen1.5-7b", 576, "0123456789abcdef")):
            cfg = compose("train", overrides=[*overrides, f"llm={llm}", f"visual_tokens={t}"])
            resolved = to_plain(cfg)
            record = {
                "status": "done",
                "config_hash": config_hash or result_hash(resolved),
                "train_seconds": 3600.0,
            }
            write_result(sweep / f"llm={llm}" / f"T={t}" / "seed=0", record)
    proc = run_plan(*overrides)
    assert proc.returncode == 0, proc.stderr
    table = rows(proc.stdout)
    assert len(table) == 28  # 4 LLMs x 7 T
    assert table["llm=qwen1.5-0.5b/T=1/seed=0"].group(2) == "done"
    assert table["llm=qwen1.5-0.5b/T=1/seed=0"].group(9) == "8"  # its run: 1 hour x 8 GPUs
    assert table["llm=qwen1.5-7b/T=576/seed=0"].group(2) == "stale"  # done, but for another config
    assert {
        m.group(2) for name, m in table.items() if "0.5b/T=1/" not in name and "7b/T=576" not in name
    } == {"todo"}
    assert {m.group(3) for m in table.values()} <= {"ddp", "zero2", "zero3"}
    hours = [float(m.group(7)) for m in table.values()]
    total = re.search(r"this sweep costs ~([\d.]+) GPU-hours on H200, ([\d.]+) already done", proc.stdout)
    assert total, proc.stdout
    assert float(total.group(1)) == pytest.approx(sum(hours), rel=0.01)
    assert float(total.group(2)) == pytest.approx(
        float(table["llm=qwen1.5-0.5b/T=1/seed=0"].group(7)), rel=0.01
    )
    assert "ASSUMED" in proc.stdout  # no LLaVA data here: the assumed text length is said, not hidden


def test_user_errors_exit_2_without_a_traceback():
    proc = run_plan("+sweep=grid", "cluster.gpu=null")
    assert proc.returncode == 2 and "cluster.gpu" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_plan("--nope", "+sweep=grid")
    assert proc.returncode == 2 and "--nope" in proc.stderr


@pytest.mark.slow
def test_the_tiny_plan_predicts_a_points_fit_time_from_another_points_measurement(run_cli, tmp_path):
    """Measure one tiny point's throughput on this CPU (a row from its own fit time), then the plan prices a
    point with 4x the visual tokens (2.5x the LLM positions) by FLOPs: within 35% of that point's measured fit
    time (CPU timings on a shared machine; measured 11% when written)."""
    sweep = tmp_path / "sweep"
    common = [
        "+sweep=tiny",
        # QueCC, whose windows' cost grows with T as the FLOPs count says; with average pooling a tiny CPU
        # step is mostly fixed overhead and T=64 costs what T=16 does (the FLOPs price it 1.6x)
        "compressor=quecc",
        "llm=tiny-m",
        "seed=0",
        "trainer.max_steps=30",
        "trainer.val_check_interval=30",
        "trainer.limit_val_batches=2",
        "eval_during_training.generate=false",
        "eval.limit=16",
        "eval.progress=false",
        "data.progress=false",
        f"hydra.sweep.dir={sweep}",
    ]
    run_cli(*common, "visual_tokens=16,64", "hydra.launcher.n_jobs=1")  # one at a time: no shared cores
    table_path = tmp_path / "rows.json"
    proc = run_plan(
        "--add-row", str(sweep / "llm=tiny-m" / "T=16" / "seed=0"), "--throughput", str(table_path)
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(table_path.read_text())
    assert (row["device"], row["strategy"], row["visual_tokens"], row["micro_batch"]) == (
        "cpu",
        "ddp",
        16,
        16,
    )

    proc = run_plan("--throughput", str(table_path), *common, "visual_tokens=16,64")
    assert proc.returncode == 0, proc.stderr
    table = rows(proc.stdout)
    measured, other = table["llm=tiny-m/T=16/seed=0"], table["llm=tiny-m/T=64/seed=0"]
    assert measured.group(2) == other.group(2) == "done"  # their result.json, under this config
    assert measured.group(10) == "measured" and other.group(10).startswith("extrapolated (T 64 vs 16")
    assert float(measured.group(7)) == pytest.approx(float(measured.group(9)), rel=0.01)
    estimate, actual = float(other.group(7)), float(other.group(9))
    assert estimate == pytest.approx(actual, rel=0.35), proc.stdout
