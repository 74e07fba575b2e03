"""Loader defaults: workers and pinned memory on GPU configs (from SLURM's CPUs), none on the CPU ones."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from vlmscale.data.module import default_num_workers, loader_settings
from vlmscale.results import training_hash

CONF = Path(__file__).resolve().parents[2] / "conf"


def composed(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("trainer", ["gpu", "deepspeed_zero2", "deepspeed_zero3"])
def test_gpu_configs_get_workers_pinned_memory_and_prefetch(trainer, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")  # conf/sweep/grid.yaml: 8 CPUs per GPU task
    cfg = composed(f"trainer={trainer}", "data=llava_finetune")
    settings = loader_settings(cfg["loader"], cfg["trainer"]["accelerator"])
    assert settings == {"num_workers": 7, "pin_memory": True, "prefetch_factor": 2}


def test_cpu_config_keeps_loading_in_the_training_process(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    cfg = composed()
    assert loader_settings(cfg["loader"], cfg["trainer"]["accelerator"]) == {
        "num_workers": 0,
        "pin_memory": False,
    }


def test_explicit_values_win_over_auto():
    settings = loader_settings({"num_workers": 3, "pin_memory": False, "prefetch_factor": 4}, "gpu")
    assert settings == {"num_workers": 3, "pin_memory": False, "prefetch_factor": 4}


def test_default_workers_without_slurm_share_the_cpus_between_gpus():
    assert default_num_workers("gpu", env={}, cpus=64) >= 1
    assert default_num_workers("gpu", env={}, cpus=2) == 1
    assert default_num_workers("gpu", env={"SLURM_CPUS_PER_TASK": "1"}) == 1
    assert default_num_workers("cpu", env={"SLURM_CPUS_PER_TASK": "16"}) == 0


def test_loader_speed_settings_leave_the_training_hash_alone():
    """Workers, pinned memory, prefetch and compile change how fast a run goes, not its weights: a run may
    resume (and a done point stay done) with other values."""
    base = composed()
    faster = composed(
        "loader.num_workers=6", "loader.pin_memory=true", "loader.prefetch_factor=8", "compile=true"
    )
    assert training_hash(faster) == training_hash(base)
    assert training_hash(composed("loader.batch_size=8")) != training_hash(base)


def test_llava_finetune_groups_by_length_and_pretrain_does_not():
    assert composed("data=llava_finetune")["data"]["group_by_length"] is True
    assert composed("data=llava_pretrain")["data"]["group_by_length"] is False
    assert "group_by_length" not in composed()["data"]  # the synthetic suite: one plain shuffled stream
