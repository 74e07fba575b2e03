"""Every config group composes with the training entry point, and the parts it names instantiate."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[2] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_train(overrides=(), hydra_config=False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


@pytest.mark.parametrize(
    "group", ["llm", "vision", "compressor", "projector", "data", "trainer", "logger", "eval"]
)
def test_every_option_of_every_group_composes(group):
    assert options(group), f"conf/{group} is empty"
    for option in options(group):
        cfg = compose_train([f"{group}={option}"])
        OmegaConf.to_container(cfg.llm, resolve=True)  # the model groups resolve on their own
        assert cfg.visual_tokens and cfg.trainer._target_ == "lightning.pytorch.Trainer"


def test_sweep_axes_are_top_level_and_trainer_args_live_under_trainer():
    cfg = compose_train(["llm=tiny-s", "visual_tokens=4", "trainer.max_steps=20"])
    assert cfg.llm.name == "tiny-s" and cfg.visual_tokens == 4 and cfg.trainer.max_steps == 20


@pytest.mark.parametrize(
    "sweep,points", [("tiny", 32), ("grid", 28), ("grid_pretrain", 28), ("grid_holdout", 7)]
)
def test_sweeps_turn_on_multirun_and_enumerate_the_grid(sweep, points):
    cfg = compose_train([f"+sweep={sweep}"], hydra_config=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    params = cfg.hydra.sweeper.params
    n = 1
    for values in params.values():
        n *= len(str(values).split(","))
    assert n == points


def test_paper_grid_defaults_to_slurm_and_tiny_to_local():
    grid = compose_train(["+sweep=grid"], hydra_config=True)
    tiny = compose_train(["+sweep=tiny"], hydra_config=True)
    assert grid.hydra.launcher._target_ == "hydra_plugins.vlmscale_launcher.CheckpointingSlurmLauncher"
    assert grid.hydra.launcher.gpus_per_node == 8
    assert "joblib" in tiny.hydra.launcher._target_
    assert grid.vision.pretrained == "openai/clip-vit-large-patch14-336"
    assert grid.init_from.startswith("multirun/grid_pretrain/llm=qwen1.5-0.5b/T=")


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_trainers_instantiate_their_strategy(stage):
    pytest.importorskip("deepspeed")
    cfg = compose_train([f"trainer=deepspeed_zero{stage}"])
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    strategy = instantiate(cfg.trainer.strategy)
    assert strategy.config["zero_optimization"]["stage"] == stage
    assert strategy.config["zero_optimization"]["overlap_comm"] is True


def test_wandb_logger_is_offline_without_a_key(monkeypatch, tmp_path):
    from vlmscale.build import build_loggers, wandb_offline

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert wandb_offline()
    monkeypatch.setenv("WANDB_MODE", "online")
    assert not wandb_offline()
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_train(["logger=wandb"])
    loggers = build_loggers(cfg, tmp_path)
    assert [type(lg).__name__ for lg in loggers] == ["CSVLogger", "WandbLogger"]


def test_tiny_llms_bring_their_learning_rate_and_the_command_line_still_wins():
    lrs = {
        name: compose_train([f"llm={name}"]).optim.lr for name in ("tiny-xs", "tiny-s", "tiny-m", "tiny-l")
    }
    assert lrs == {"tiny-xs": 3e-3, "tiny-s": 2e-3, "tiny-m": 1e-3, "tiny-l": 5e-4}
    assert compose_train(["llm=tiny-xs", "optim.lr=7e-3"]).optim.lr == 7e-3
    # the paper's grid sets its own finetune lr whatever the LLM
    assert compose_train(["+sweep=grid"]).optim.lr == 2e-5
