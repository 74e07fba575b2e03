"""A tiny VLM trained by `vlmscale.train`, then evaluated from its checkpoint on the synthetic test split and
on a fixture of every benchmark format; its result.json gains the per-task and per-category errors."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from tests.eval.rescore import rescored_error
from vlmscale.eval.tasks import TASKS, build_task
from vlmscale.results import read_result

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.slow
def test_trained_checkpoint_evaluates_on_every_format(bench_root, tmp_path):
    from vlmscale.eval.__main__ import run as evaluate_checkpoint
    from vlmscale.train import run as train

    run_dir = tmp_path / "run"
    overrides = [
        "llm=tiny-xs",
        "vision=tiny-clip-random",  # plumbing only: no tower pretraining run
        "visual_tokens=4",
        "stage=finetune",
        "trainer.max_steps=6",
        "trainer.val_check_interval=6",
        "trainer.enable_progress_bar=false",
        "eval.limit=8",
        "eval.progress=false",
        "data.progress=false",
        "threads=1",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"run_dir={run_dir}",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        trained = train(compose("train", overrides=overrides))
    assert trained["status"] == "done" and "error/synthetic" in trained["metrics"]

    tasks = sorted(TASKS)
    catalog = {name: {"root": str(bench_root / name)} for name in tasks}  # each task pointed at its fixture
    catalog["pope"]["splits"] = ["random", "popular"]  # the fixture writes two of the three splits
    metrics = evaluate_checkpoint(
        {
            "ckpt": str(run_dir / "checkpoints" / "last.ckpt"),
            "tasks": tasks,
            "limit": None,
            "use_run_config": True,
            "update_result": True,
            "device": "cpu",
            "eval": {"batch_size": 4, "progress": False, "catalog": catalog},
        }
    )
    record = read_result(run_dir)
    assert record["metrics"]["val/loss"] == trained["metrics"]["val/loss"]  # training metrics kept
    for name in tasks:
        assert 0.0 <= record["metrics"][f"error/{name}"] <= 1.0, name
        # recomputed from the predictions file with the task's scorer (tests/eval/rescore.py)
        task = build_task(name, **catalog[name])
        assert record["metrics"][f"error/{name}"] == pytest.approx(rescored_error(task, run_dir / "eval"))
    for key in ("error/reasoning", "error/ocr", "error/avg"):
        assert record["metrics"][key] == pytest.approx(metrics[key])
    assert record["eval"]["scoring"] == {
        name: "rules" if name == "mathvista" else "official" for name in tasks
    }
