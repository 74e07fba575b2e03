"""Config validation: each bad value is named with its fix, and all of them come back in one message."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from vlmscale.validate import ConfigError, config_problems, validate_config

CONF = Path(__file__).resolve().parents[2] / "conf"


def plain(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return OmegaConf.to_container(compose("train", overrides=list(overrides)), resolve=True)


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("llm=tiny-xs", "visual_tokens=1"),
        ("projector=avgpool", "visual_tokens=64"),
        ("visual_tokens=256",),
        ("trainer=gpu", "trainer.devices=1", "vision.dtype=bfloat16", "compile=true", "loader.num_workers=4"),
    ],
)
def test_shipped_configs_are_valid(overrides):
    assert config_problems(plain(*overrides)) == []


@pytest.mark.parametrize(
    "override, expected",
    [
        ("visual_tokens=abc", "visual_tokens='abc': must be an integer >= 1"),
        ("visual_tokens=0", "visual_tokens=0: must be an integer >= 1"),
        (
            "visual_tokens=5",
            "visual_tokens=5: does not tile the 16x16 vision grid (T = (G/k)^2); valid values are [1, 4",
        ),
        ("seed=abc", "seed='abc': must be an integer"),
        ("seed=-1", "seed=-1: must be an integer"),
        ("threads=0", "threads=0: must be an integer >= 1"),
        ("threads=two", "threads='two'"),
        ("stage=both", "stage='both': must be one of pretrain, finetune"),
        ("optim.lr=-1", "optim.lr=-1: must be a number > 0"),
        ("optim.lr=0", "optim.lr=0: must be a number > 0"),
        ("optim.warmup_ratio=2", "optim.warmup_ratio=2: must be a number >= 0 and <= 1"),
        ("trainer.max_steps=0", "trainer.max_steps=0: must be an integer >= 1"),
        ("trainer.max_steps=-1", "trainer.max_steps=-1: the training stream is endless"),
        ("trainer.max_steps=1.5", "trainer.max_steps=1.5: must be an integer >= 1"),
        ("loader.batch_size=0", "loader.batch_size=0: must be an integer >= 1"),
        ("checkpoint.every_n_train_steps=0", "checkpoint.every_n_train_steps=0"),
        ("resume=/no/such.ckpt", "resume='/no/such.ckpt': no such checkpoint"),
        ("init_from=/no/such.ckpt", "init_from='/no/such.ckpt': no such checkpoint"),
        ("eval.tasks=[nope]", "eval.tasks: unknown task 'nope'; known tasks:"),
        ("eval.limit=0", "eval.limit=0: must be an integer >= 1"),
        ("data.on_missing_image=ignore", "data.on_missing_image='ignore': must be one of error, skip"),
        ("loader.num_workers=-1", "loader.num_workers=-1: must be an integer >= 0 (or auto)"),
        ("loader.pin_memory=maybe", "loader.pin_memory='maybe': must be true, false or auto"),
        ("loader.prefetch_factor=0", "loader.prefetch_factor=0: must be an integer >= 1"),
        ("compile=yes", "compile='yes': must be true or false"),
    ],
)
def test_each_bad_value_is_named(override, expected):
    problems = config_problems(plain(override))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_full_grid_without_compressor():
    problems = config_problems(plain("compressor=none", "visual_tokens=16"))
    assert problems == [
        "visual_tokens=16: without a compressor T must be the full 16x16 grid = 256; "
        "pick a compressor (compressor=quecc, avgpool) for fewer tokens"
    ]


def test_llava_data_with_synthetic_eval_fails_before_training(tmp_path):
    problems = config_problems(
        plain("data=llava_finetune", f"data.splits.train.data_path={tmp_path}/none.json")
    )
    assert any("none.json': no such file" in p for p in problems)
    assert any("'synthetic' scores the synthetic suite" in p and "eval.tasks=[" in p for p in problems)


def test_llava_data_with_its_benchmarks_is_valid(tmp_path):
    (tmp_path / "d.json").write_text("[]")
    (tmp_path / "gqa").mkdir()
    config = plain(
        "data=llava_finetune",
        f"data.splits.train.data_path={tmp_path}/d.json",
        f"data.splits.train.image_folder={tmp_path}",
        "eval.tasks=[gqa]",
        f"eval.data_dir={tmp_path}",
    )
    assert config_problems(config) == []
    config["eval"]["tasks"] = ["gqa", "pope"]
    assert config_problems(config) == [
        f"eval.tasks: 'pope' has no data at '{tmp_path}/pope'; set VLMSCALE_EVAL_DIR (or eval.data_dir, or "
        "eval.catalog.pope.root) to where the benchmark is, or drop it from eval.tasks"
    ]


def test_all_problems_in_one_message():
    with pytest.raises(ConfigError, match=r"^invalid config \(4 problem\(s\)\)") as info:
        validate_config(plain("visual_tokens=abc", "seed=abc", "optim.lr=-1", "trainer.max_steps=0"))
    message = str(info.value)
    assert message.startswith("invalid config (4 problem(s)):")
    for key in ("visual_tokens='abc'", "seed='abc'", "optim.lr=-1", "trainer.max_steps=0"):
        assert f"  - {key}" in message
    assert len(info.value.problems) == 4


def test_valid_config_passes_silently():
    assert validate_config(plain()) is None
