"""One `cluster` setting drives SLURM's tasks and Lightning's processes: two tasks on the local cluster's node run
one point as DDP over two CPU processes (gloo), the CPU stand-in for a multi-node GPU job. Both ranks train the
same model; rank 0 alone writes result.json."""

import re

import pytest
from sweep_helpers import QUICK, result

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_two_slurm_tasks_train_one_point_as_ddp(run_cli, tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        "+sweep=tiny",
        "hydra/launcher=slurm",
        "hydra.launcher.timeout_min=15",
        *QUICK,
        "visual_tokens=4",
        "seed=0",
        "cluster.devices_per_node=2",  # -> hydra.launcher.tasks_per_node=2 and trainer.devices=2
        "trainer.strategy=ddp",
        "trainer.max_steps=12",
        "trainer.val_check_interval=12",
        f"hydra.sweep.dir={sweep}",
    )
    results = list(sweep.rglob("result.json"))
    assert len(results) == 1
    record = result(results[0].parent)
    assert record["status"] == "done" and record["steps"] == 12
    assert record["config"]["trainer"]["devices"] == 2 and record["config"]["trainer"]["num_nodes"] == 1

    # one SLURM job with two tasks, each a rank of the same DDP run, agreeing on step, config and loss
    logs = {p.name: p.read_text() for p in (sweep / ".submitit").rglob("*_log.err")}
    logs.update({p.name: p.read_text() for p in (sweep / ".submitit").rglob("*_log.out")})
    lines = re.findall(
        r"rank (\d) of (\d): step (\d+), training hash (\w+), val/loss ([\d.]+)", "".join(logs.values())
    )
    assert sorted(rank for rank, *_ in lines) == ["0", "1"], logs
    assert {tuple(rest) for _, *rest in lines} == {
        ("2", "12", record["training_hash"], f"{record['metrics']['val/loss']:.6f}")
    }
