"""Every config group composes with the training entry point, and the parts it names instantiate."""

import inspect
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[2] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_train(overrides=(), hydra_config=False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


MODEL_GROUPS = ("llm", "vision", "compressor", "projector")
GROUPS = ("optim", *MODEL_GROUPS, "data", "trainer", "logger", "eval", "paths")
# The parts an option is built with when its own group is not the one under test: small and offline.
TINY = {"llm": "tiny-xs", "vision": "tiny-clip-random", "compressor": "quecc", "projector": "mlp2x_gelu"}


def builder_keys(builder) -> set[str]:
    return set(inspect.signature(builder).parameters)


@pytest.fixture(scope="module")
def offline_tokenizer(tmp_path_factory):
    from vlmscale.data import load_tokenizer

    return load_tokenizer(None, tmp_path_factory.mktemp("tokenizer"))


def build_llm_option(plain, **_):
    from vlmscale.models.llm import build_llm

    llm = plain["llm"]
    assert set(llm) <= builder_keys(build_llm), set(llm) - builder_keys(build_llm)
    # a Hub name: no network here (tests/models/test_pretrained.py loads models laid out as on the Hub)
    if llm["pretrained"]:
        assert llm["config"] is None and llm["pretrained"].startswith("Qwen/Qwen1.5-")
        return
    with torch.device("meta"):  # the architecture, without the memory of a 0.5B-shaped model
        model = build_llm(**llm)
    assert model.hidden_size == llm["config"]["hidden_size"]
    assert len(model.model.model.layers) == llm["config"]["num_hidden_layers"]


def build_vision_option(plain, **_):
    from vlmscale.models.vision import build_vision_tower

    vision = plain["vision"]
    assert set(vision) <= builder_keys(build_vision_tower), set(vision) - builder_keys(build_vision_tower)
    if vision["pretrained"]:  # a Hub name, see above
        assert vision["config"] is None and vision["pretrained"].startswith(("openai/", "google/"))
        return
    if vision.get("pretrain"):  # a recipe (tests/test_tower_pretrain.py runs it): never silently random
        with pytest.raises(ValueError, match="asks for pretraining"):
            build_vision_tower(**vision)
    with torch.device("meta"):
        tower = build_vision_tower(**{**vision, "pretrain": None})
    assert tower.hidden_size == vision["config"]["hidden_size"]


def build_connector_option(plain, tokenizer, **_):
    from vlmscale.assemble import check_config
    from vlmscale.models import build_vlm
    from vlmscale.models.compressors import COMPRESSORS

    if plain["projector"].get("renamed_to"):  # an old spelling: the run stops with the new one
        with pytest.raises(ValueError, match=f"use `{plain['projector']['renamed_to']}`"):
            check_config(plain)
        return
    check_config(plain)
    parts = {k: plain[k] for k in (*MODEL_GROUPS, "visual_tokens")}
    vlm = build_vlm(**parts, tokenizer=tokenizer)
    assert vlm.visual_tokens == plain["visual_tokens"]
    options = dict(plain["compressor"])
    compressor = vlm.connector.compressor
    if options["name"] == "none":
        assert compressor is None
        return
    assert type(compressor) is COMPRESSORS[options.get("type", options["name"])]
    if "query" in options:  # quecc / quecc_prefix: the question reaches the compressor the way the YAML says
        assert compressor.query_mode == options["query"]


def build_data_option(plain, tokenizer, **_):
    from vlmscale.data import build_datasets
    from vlmscale.data.module import SAMPLER_KEYS
    from vlmscale.models.vision import default_image_processor

    data = dict(plain["data"], progress=False)
    sampler = {
        key: data.pop(key) for key in SAMPLER_KEYS if key in data
    }  # how training batches, as build does
    assert set(sampler.values()) <= {True, False}
    if data["source"] == "synthetic":
        data["sizes"] = {"train": 4, "val": 2, "test": 2}  # the generator, not its full size
    datasets = build_datasets(tokenizer, default_image_processor("clip", 64), **data)
    assert {"train", "val"} <= set(datasets) and all(len(d) for d in datasets.values())


def build_trainer_option(plain, cfg, tmp_path, option, **_):
    args = dict(default_root_dir=str(tmp_path), logger=False, enable_checkpointing=False)
    if plain["trainer"]["accelerator"] == "cpu":
        trainer = instantiate(cfg.trainer, **args)
        assert trainer.max_steps == plain["trainer"]["max_steps"]
        return
    # A GPU trainer: every key is accepted (an unknown one raises TypeError first), then the missing GPU stops it
    with pytest.raises(InstantiationException, match=r"MisconfigurationException\('No supported gpu backend"):
        instantiate(cfg.trainer, **args)
    if OmegaConf.is_dict(cfg.trainer.get("strategy")):  # a strategy node (DeepSpeed, or trainer=auto's pick)
        strategy = instantiate(cfg.trainer.strategy)
        if option.startswith("deepspeed_zero"):
            assert strategy.config["zero_optimization"]["stage"] == int(option[-1])
        else:  # trainer=auto on one H200: a tiny model fits plain DDP
            assert type(strategy).__name__ == "DDPStrategy"


def build_logger_option(plain, cfg, tmp_path, monkeypatch, **_):
    from vlmscale.build import build_loggers

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path))
    loggers = build_loggers(cfg, tmp_path)
    assert [type(x).__name__ for x in loggers] == [
        "CSVLogger",
        *(f"{k.capitalize()}Logger" for k in plain["logger"]),
    ]


def build_eval_option(plain, **_):
    from vlmscale.eval.tasks import build_tasks

    ev = plain["eval"]
    tasks = build_tasks(ev["tasks"], ev["catalog"], data_dir=ev["data_dir"], scoring=ev["scoring"])
    assert [t.name for t in tasks] == list(ev["tasks"])


def build_optim_option(plain, **_):
    from vlmscale.lit import OptimConfig

    assert OptimConfig(**plain["optim"]).lr > 0


def build_paths_option(plain, tmp_path, **_):
    assert plain["paths"]["cache_dir"] == str(tmp_path / "cache")  # $VLMSCALE_CACHE wins over the default


BUILDERS = {
    "optim": build_optim_option,
    "llm": build_llm_option,
    "vision": build_vision_option,
    "compressor": build_connector_option,
    "projector": build_connector_option,
    "data": build_data_option,
    "trainer": build_trainer_option,
    "logger": build_logger_option,
    "eval": build_eval_option,
    "paths": build_paths_option,
}


def write_llava_folder(root: Path) -> None:
    """The two files the llava data groups name under $LLAVA_DATA_DIR, two records each, one image."""
    from PIL import Image

    record = {
        "image": "a.png",
        "conversations": [{"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "red"}],
    }
    for data_path, image_folder in (
        ("LLaVA-Pretrain/blip_laion_cc_sbu_558k.json", "LLaVA-Pretrain/images"),
        ("llava_v1_5_mix665k.json", "."),
    ):
        (root / image_folder).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), (255, 0, 0)).save(root / image_folder / "a.png")
        (root / data_path).write_text(json.dumps([{**record, "id": "r0"}, {**record, "id": "r1"}]))


@pytest.mark.parametrize(
    "group,option", [pytest.param(g, o, id=f"{g}={o}") for g in GROUPS for o in options(g)]
)
def test_every_option_composes_resolves_and_builds(group, option, tmp_path, monkeypatch, offline_tokenizer):
    """Each option of each group, with small parts elsewhere: the whole config resolves, and what the option
    describes is built (its `_target_`s instantiated, its keys passed to its builder) or, where this machine
    cannot (a Hub download, a GPU), checked up to exactly that point."""
    monkeypatch.setenv("VLMSCALE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LLAVA_DATA_DIR", str(tmp_path / "llava"))
    write_llava_folder(tmp_path / "llava")
    tokens = 256 if (group, option) == ("compressor", "none") else 4  # none keeps the 16 x 16 patch grid
    small = dict(TINY, llm="tiny-s") if option == "identity" else TINY  # identity: the LLM as wide as QueCC
    overrides = [f"{g}={o}" for g, o in small.items() if g != group]
    overrides += [f"{group}={option}", f"visual_tokens={tokens}"]
    if option.startswith("llava_"):
        overrides.append("data.val_size=1")  # the groups hold out 1000 records; the fixture has 2
    if option == "auto":
        overrides.append("cluster.gpu=H200")  # trainer=auto sizes the strategy from the GPU's memory
    cfg = compose_train(overrides)
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    if group in MODEL_GROUPS:
        assert plain[group]["name"] == option, "a model group's name is its file's"
    BUILDERS[group](
        plain=plain,
        cfg=cfg,
        option=option,
        tmp_path=tmp_path,
        monkeypatch=monkeypatch,
        tokenizer=offline_tokenizer,
    )


@pytest.mark.parametrize(
    "choice,cls",
    [
        ("hydra/launcher=local", "JoblibLauncher"),
        ("hydra/launcher=slurm", "CheckpointingSlurmLauncher"),
        ("hydra/sweeper=vlmscale", "PointByPointSweeper"),
    ],
)
def test_every_hydra_launcher_and_sweeper_option_instantiates(choice, cls):
    cfg = compose_train([choice, "+sweep=tiny"], hydra_config=True)
    node = cfg.hydra[choice.split("/")[1].split("=")[0]]
    assert type(instantiate(node)).__name__ == cls


def test_sweep_axes_are_top_level_and_trainer_args_live_under_trainer():
    cfg = compose_train(["llm=tiny-s", "visual_tokens=4", "trainer.max_steps=20"])
    assert cfg.llm.name == "tiny-s" and cfg.visual_tokens == 4 and cfg.trainer.max_steps == 20


@pytest.mark.parametrize(
    "sweep,points", [("tiny", 24), ("grid", 28), ("grid_pretrain", 28), ("grid_holdout", 7)]
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
    # chosen on the validation split at the demo's budget (conf/optim/tiny-*.yaml, docs/SYNTHETIC.md)
    assert lrs == {"tiny-xs": 3e-3, "tiny-s": 1e-3, "tiny-m": 5e-4, "tiny-l": 2.5e-4}
    assert compose_train(["llm=tiny-xs", "optim.lr=7e-3"]).optim.lr == 7e-3
    # the paper's grid sets its own finetune lr whatever the LLM
    assert compose_train(["+sweep=grid"]).optim.lr == 2e-5
