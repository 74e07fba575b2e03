"""vision.feature_cache auto | on | off: the tower's state, the disk, the config check."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from feature_helpers import CONF, run_config

from vlmscale.contract import FEATURE_CACHE_ENV
from vlmscale.features import entry_bytes, prepare_features
from vlmscale.validate import ConfigError, config_problems

# 20 images x 4 layers x 256 patches x 64 channels x 4 bytes
ESTIMATE = 20 * 4 * 256 * 64 * 4


def entries(cache) -> list[Path]:
    return [p for p in Path(cache).iterdir() if p.name.startswith("features-")]


@pytest.fixture
def full_disk(monkeypatch):
    monkeypatch.setattr("vlmscale.features.policy.free_bytes", lambda folder: 1000)


def test_auto_runs_the_tower_live_when_the_entry_would_not_fit(
    full_disk, synthetic, synthetic_data, tower, tmp_path, caplog
):
    with caplog.at_level(logging.WARNING, "vlmscale.features"):
        assert prepare_features(run_config(tmp_path, synthetic_data), tower, True, synthetic) is None
    assert "needs 5.0 MiB (20 images x 4 layers x 256 patches x 64 x 4 bytes)" in caplog.text
    assert "so the tower runs live" in caplog.text and not entries(tmp_path)


def test_on_refuses_when_the_entry_would_not_fit(full_disk, synthetic, synthetic_data, tower, tmp_path):
    cfg = run_config(tmp_path, synthetic_data, feature_cache="on")
    with pytest.raises(
        ConfigError,
        match=r"feature_cache=on: the feature cache needs 5.0 MiB .* only 0.0 MiB "
        r"is free there; free space or point paths.cache_dir .* or set vision.feature_cache=off",
    ):
        prepare_features(cfg, tower, True, synthetic)
    assert not entries(tmp_path)


def test_the_estimate_is_the_entry_size_and_a_built_entry_needs_no_space(
    synthetic, synthetic_data, tower, tmp_path, monkeypatch
):
    cfg = run_config(tmp_path, synthetic_data, feature_cache="on")
    folder, _ = prepare_features(cfg, tower, True, synthetic)
    assert 0 < entry_bytes(folder) - ESTIMATE < 64 * 1024  # npy headers, image lists, meta.json
    monkeypatch.setattr("vlmscale.features.policy.free_bytes", lambda folder: 0)
    assert prepare_features(cfg, tower, True, synthetic)[0] == folder


def test_off_and_a_training_tower_run_live(synthetic, synthetic_data, tower, tmp_path):
    assert (
        prepare_features(run_config(tmp_path, synthetic_data, feature_cache="off"), tower, True, synthetic)
        is None
    )
    tower.requires_grad_(True)
    try:
        assert prepare_features(run_config(tmp_path, synthetic_data), tower, True, synthetic) is None
        with pytest.raises(ConfigError, match="the vision tower trains in this run"):
            prepare_features(run_config(tmp_path, synthetic_data, feature_cache="on"), tower, True, synthetic)
    finally:
        tower.requires_grad_(False)
    assert not entries(tmp_path)


def test_the_config_check_names_a_bad_mode_and_on_with_a_training_tower():
    def problems(**vision):
        return config_problems({"vision": vision})

    assert any(
        "vision.feature_cache='sometimes': must be one of auto, on, off" in p
        for p in problems(feature_cache="sometimes")
    )
    assert any(
        "vision.feature_cache=on: the vision tower trains" in p
        for p in problems(feature_cache="on", freeze=False)
    )
    for ok in ({"feature_cache": "auto", "freeze": False}, {"feature_cache": "on"}, {}):
        assert not [p for p in problems(**ok) if "feature_cache" in p]


@pytest.mark.parametrize("path", sorted((CONF / "vision").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_vision_group_defaults_to_auto_unless_the_environment_says(path):
    cfg = yaml.safe_load(path.read_text())
    if "feature_cache" in cfg or "defaults" not in cfg:  # tiny-clip-random inherits tiny-clip's
        assert cfg["feature_cache"] == f"${{oc.env:{FEATURE_CACHE_ENV},auto}}"
