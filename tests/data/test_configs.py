import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from vlmscale.contract import default_cache_dir
from vlmscale.data import build_datasets
from vlmscale.data.module import SAMPLER_KEYS

CONF = Path(__file__).resolve().parents[2] / "conf"
PARAMS = set(inspect.signature(build_datasets).parameters) - {"tokenizer", "image_processor"}


def data_config(name: str):
    """conf/data/<name>.yaml as training composes it (its cache_dir interpolates ${paths.cache_dir})."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"data={name}"]).data


@pytest.mark.parametrize("name", ["synthetic", "llava_pretrain", "llava_finetune"])
def test_data_config_keys_are_builder_kwargs(name, monkeypatch):
    monkeypatch.setenv("LLAVA_DATA_DIR", "/data/llava")
    monkeypatch.delenv("VLMSCALE_CACHE", raising=False)
    cfg = OmegaConf.to_container(data_config(name), resolve=True)
    assert set(cfg) <= PARAMS | SAMPLER_KEYS, set(cfg) - PARAMS - SAMPLER_KEYS  # + how train is batched
    assert cfg["name"] == name and Path(cfg["cache_dir"]).expanduser() == default_cache_dir()
    if cfg["source"] == "llava":
        assert cfg["splits"]["train"]["data_path"].startswith("/data/llava/")


def test_synthetic_config_builds(tmp_path, monkeypatch, tokenizer, processor):
    monkeypatch.setenv("VLMSCALE_CACHE", str(tmp_path))
    cfg = data_config("synthetic")
    cfg.sizes = {"train": 5, "val": 5, "test": 5}
    data = build_datasets(**cfg, tokenizer=tokenizer, image_processor=processor)  # DictConfig values are fine
    assert {k: len(v) for k, v in data.items()} == {"train": 5, "val": 5, "test": 5}
    assert str(data["train"].data_path).startswith(str(tmp_path))
