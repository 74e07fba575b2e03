"""The pretrained tiny tower: built once per parameters, reused (not retrained), deterministic, and loaded by
``assemble.resolve_pretrained_tower`` in place of random weights."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from vlmscale import tower_pretrain as tp
from vlmscale.models import build_vision_tower

CONF = Path(__file__).resolve().parents[1] / "conf"

SMALL = {"steps": 4, "batch_size": 4, "lr": 1e-3, "seed": 0}


@pytest.fixture(scope="module")
def vision_cfg():
    return yaml.safe_load((CONF / "vision" / "tiny-clip.yaml").read_text())


@pytest.fixture(scope="module")
def built(tmp_path_factory, vision_cfg):
    cache = tmp_path_factory.mktemp("tower-cache")
    return cache, tp.ensure_pretrained_tower(vision_cfg["config"], cache, **SMALL)


def _state(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_built_once_and_reused(built, vision_cfg, monkeypatch):
    cache, folder = built
    meta = json.loads((folder / "pretrain.json").read_text())
    assert meta["params"]["steps"] == SMALL["steps"] and meta["loss_last"] < meta["loss_first"]
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(tp, "pretrain_tower", lambda *a, **k: calls.append(1) or [])
    again = tp.ensure_pretrained_tower(vision_cfg["config"], cache, **SMALL)
    assert again == folder and not calls
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]


def test_other_parameters_other_entry(built, vision_cfg):
    _, folder = built
    other = tp.tower_dir(None, tp.pretrain_params(vision_cfg["config"], **{**SMALL, "seed": 1}))
    assert other.name != folder.name
    with pytest.raises(ValueError, match="unknown tower pretraining keys"):
        tp.pretrain_params(vision_cfg["config"], epochs=3)


def test_deterministic(built, vision_cfg, tmp_path):
    _, folder = built
    again = tp.ensure_pretrained_tower(vision_cfg["config"], tmp_path, **SMALL)
    a, b = _state(folder), _state(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_build_vision_tower_loads_the_pretrained_weights(built, vision_cfg):
    cache, folder = built
    from vlmscale.assemble import resolve_pretrained_tower

    kwargs = {k: v for k, v in vision_cfg.items() if k != "pretrain"}
    tower = build_vision_tower(**resolve_pretrained_tower({**kwargs, "pretrain": SMALL}, str(cache)))
    saved = _state(folder)
    weight = "embeddings.patch_embedding.weight"
    assert torch.equal(tower.encoder.state_dict()[weight], saved[weight])
    assert not any(p.requires_grad for p in tower.encoder.parameters())  # frozen, as configured
    torch.manual_seed(0)
    random = build_vision_tower(**kwargs, pretrain=None)
    assert not torch.equal(random.encoder.state_dict()[weight], saved[weight])
    with pytest.raises(ValueError, match="assemble.build_model"):  # never a silent random stand-in
        build_vision_tower(**kwargs, pretrain=SMALL)


def test_random_tower_config_stays_selectable():
    cfg = yaml.safe_load((CONF / "vision" / "tiny-clip-random.yaml").read_text())
    assert cfg["pretrain"] is None and cfg["defaults"][0] == "tiny-clip"
