"""trainer=auto in composed configs: the grid's points resolve to vlmscale.memory's choice, a pinned key is kept
and the rest follow it, and `cluster` drives both SLURM's allocation and Lightning's process grid."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from vlmscale import memory
from vlmscale.contract import to_plain
from vlmscale.results import result_hash

CONF = Path(__file__).resolve().parents[2] / "conf"


def compose_train(*overrides, hydra_config=False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


def resolved(cfg) -> dict:
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    return plain


def settings(plain: dict) -> tuple:
    strategy = plain["trainer"]["strategy"]
    if isinstance(strategy, str):  # Lightning's own by name: "auto" is DDP on several devices
        name = "ddp"
    else:
        stage = strategy.get("stage") or strategy.get("config", {}).get("zero_optimization", {}).get("stage")
        name = f"zero{stage}" if "DeepSpeed" in strategy["_target_"] else "ddp"
    return (
        name,
        plain["loader"]["batch_size"],
        plain["trainer"]["accumulate_grad_batches"],
        plain["gradient_checkpointing"],
        plain["llm"]["dtype"],
    )


@pytest.mark.parametrize("llm", ["qwen1.5-0.5b", "qwen1.5-7b"])
@pytest.mark.parametrize("gpu,memory_gib", [("H100", 79.6), ("H200", 140.4)])
def test_grid_points_resolve_to_the_memory_models_choice(llm, gpu, memory_gib):
    plain = resolved(compose_train("+sweep=grid", f"llm={llm}", "visual_tokens=576", f"cluster.gpu={gpu}"))
    c = memory.choose(memory.grid_job(llm, "finetune", 576, 8, memory_gib))
    dtype = "float32" if c.strategy == "ddp" else "bfloat16"
    assert settings(plain) == (c.strategy, c.micro_batch, c.accumulate, c.checkpointing, dtype)
    assert c.micro_batch * c.accumulate * plain["trainer"]["devices"] == plain["global_batch"] == 128
    if c.strategy != "ddp":  # the project's own DeepSpeed settings, folders stamped
        assert plain["trainer"]["strategy"]["_target_"] == "vlmscale.checkpoints.StampedDeepSpeedStrategy"


def test_a_forced_strategy_is_kept_and_the_batch_follows_it():
    plain = resolved(
        compose_train("+sweep=grid", "llm=qwen1.5-0.5b", "visual_tokens=576", "trainer=deepspeed_zero3")
    )
    c = memory.choose(memory.grid_job("qwen1.5-0.5b", "finetune", 576, 8, 140.4), strategies=("zero3",))
    assert settings(plain) == ("zero3", c.micro_batch, c.accumulate, False, "bfloat16")
    pinned = resolved(compose_train("+sweep=grid", "llm=qwen1.5-0.5b", "loader.batch_size=2"))
    assert settings(pinned)[1:3] == (2, 128 // (8 * 2))


def test_pretraining_stays_on_ddp_with_a_bf16_llm():
    plain = resolved(compose_train("+sweep=grid_pretrain", "llm=qwen1.5-14b", "visual_tokens=576"))
    name, micro, accumulate, _, dtype = settings(plain)
    assert (name, dtype) == ("ddp", "bfloat16") and micro * accumulate * 8 == plain["global_batch"] == 256


def test_a_model_that_fits_nowhere_says_what_was_tried():
    cfg = compose_train("+sweep=grid", "llm=qwen1.5-14b", "cluster.gpu_memory_gib=16")
    with pytest.raises(Exception, match=r"does not fit 8 x 16 GiB.*python -m vlmscale.memory"):
        resolved(cfg)


def test_cluster_drives_slurm_and_lightning_alike():
    gpu = compose_train("+sweep=grid", "cluster.nodes=2", "cluster.devices_per_node=4", hydra_config=True)
    launcher, trainer = gpu.hydra.launcher, gpu.trainer
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert (trainer.num_nodes, trainer.devices) == (2, 4)
    cpu = compose_train(
        "hydra/launcher=slurm", "cluster.devices_per_node=2", "trainer.strategy=ddp", hydra_config=True
    )
    assert (cpu.hydra.launcher.tasks_per_node, cpu.hydra.launcher.gpus_per_node) == (2, None)
    assert (cpu.trainer.accelerator, cpu.trainer.devices, cpu.trainer.num_nodes) == ("cpu", 2, 1)


def test_where_the_job_runs_is_not_part_of_the_result_hash_but_what_it_changes_is():
    base = to_plain(compose_train("llm=tiny-s"))
    moved = to_plain(compose_train("llm=tiny-s", "cluster.gpu=H200", "checkpoint.keep_previous=false"))
    wider = to_plain(compose_train("llm=tiny-s", "cluster.devices_per_node=2"))
    assert result_hash(base) == result_hash(moved)
    assert result_hash(base) != result_hash(wider)  # two processes: trainer.devices=2, another global batch
