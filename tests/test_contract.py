"""conf/train.yaml spells the run-folder pattern and the cache default in Hydra's syntax; vlmscale.contract
spells them in Python. These tests keep the two equal."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from vlmscale.contract import default_cache_dir, parse_json, parse_run_dir, run_dir_name

CONF = Path(__file__).resolve().parents[1] / "conf"


KEYS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir", "paths.cache_dir", "data.cache_dir")


def compose_train(overrides):
    """The resolved run/sweep folders and cache folders of conf/train.yaml with ``overrides``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    return {key: OmegaConf.select(cfg, key) for key in KEYS}


@pytest.mark.parametrize(
    "overrides,point",
    [
        ([], ("tiny-m", 16, 0)),
        (["llm=tiny-xs", "visual_tokens=4", "seed=3"], ("tiny-xs", 4, 3)),
        (["+sweep=tiny", "llm=tiny-l", "visual_tokens=64"], ("tiny-l", 64, 0)),
    ],
)
def test_run_folders_follow_the_contract(overrides, point):
    cfg = compose_train(overrides)
    name = run_dir_name(*point)
    assert cfg["hydra.sweep.subdir"] == name
    assert cfg["hydra.run.dir"].endswith("/" + name)
    assert parse_run_dir(cfg["hydra.sweep.subdir"]) == dict(zip(("llm", "visual_tokens", "seed"), point))


def test_run_and_sweep_folders_name_compressor_projector_and_stage():
    cfg = compose_train(["compressor=avgpool", "projector=linear", "stage=pretrain"])
    assert cfg["hydra.run.dir"].startswith("outputs/runs/avgpool-linear-pretrain/")
    assert cfg["hydra.sweep.dir"] == "multirun/avgpool-linear-pretrain"


def test_cache_default_is_the_contracts(monkeypatch):
    monkeypatch.delenv("VLMSCALE_CACHE", raising=False)
    cfg = compose_train([])
    assert Path(cfg["paths.cache_dir"]).expanduser() == default_cache_dir()
    assert cfg["data.cache_dir"] == cfg["paths.cache_dir"]
    monkeypatch.setenv("VLMSCALE_CACHE", "/tmp/elsewhere")
    assert compose_train([])["data.cache_dir"] == "/tmp/elsewhere" == str(default_cache_dir())


def test_parse_json_names_where_it_breaks_and_what_was_expected():
    assert parse_json('{"a": 1}', dict) == {"a": 1} and parse_json("[1]", list) == [1]
    with pytest.raises(ValueError, match=r"not valid JSON at line 2 column 1"):
        parse_json('{"a": 1,\n', dict)
    with pytest.raises(ValueError, match=r"expected a JSON object, got list"):
        parse_json("[1]", dict)
    with pytest.raises(ValueError, match=r"expected a JSON list, got dict"):
        parse_json("{}", list)
