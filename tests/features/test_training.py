"""Training with the feature cache: the same losses, weights and scores as the live tower, without ever running
the tower or decoding an image; and a training tower never reads the cache."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from vlmscale.data import LlavaDataset
from vlmscale.models import VisionTower
from vlmscale.results import read_result
from vlmscale.train import run
from vlmscale.validate import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf"
BASE = [
    "llm=tiny-xs",
    "vision=tiny-clip-random",  # random weights: no tower pretraining run
    "visual_tokens=4",
    "stage=finetune",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "checkpoint.every_n_train_steps=4",
    "data.sizes={train: 48, val: 8, test: 8}",
    "data.progress=false",
    "loader.batch_size=4",
    "loader.eval_batch_size=4",
    "eval.limit=8",
    "eval.progress=false",
    "threads=1",
]


def config(cache, run_dir, *overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "train", overrides=[*BASE, f"paths.cache_dir={cache}", f"run_dir={run_dir}", *overrides]
        )


class Calls:
    """Counts calls of a function while still running it."""

    def __init__(self, fn):
        self.fn, self.count = fn, 0

    def __call__(self, *args, **kwargs):
        self.count += 1
        return self.fn(*args, **kwargs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same seed trained twice: the tower live (feature_cache=off), then from the cache (on), counting the
    tower's forward passes and the image decodes of the cached run."""
    cache = tmp_path_factory.mktemp("cache")
    live_dir, cached_dir = tmp_path_factory.mktemp("live"), tmp_path_factory.mktemp("cached")
    live = run(config(cache, live_dir, "vision.feature_cache=off"))
    with pytest.MonkeyPatch.context() as patch:
        calls = {
            "tower": Calls(VisionTower.forward),
            "decode": Calls(LlavaDataset.load_image),
            "eval decode": Calls(__import__("vlmscale.eval.runner", fromlist=["x"]).open_image),
        }
        patch.setattr(VisionTower, "forward", calls["tower"])
        patch.setattr(LlavaDataset, "load_image", calls["decode"])
        patch.setattr("vlmscale.eval.runner.open_image", calls["eval decode"])
        cached = run(config(cache, cached_dir, "vision.feature_cache=on"))
    return cache, (live_dir, live), (cached_dir, cached), {k: c.count for k, c in calls.items()}


def test_the_cached_run_never_runs_the_tower_or_decodes_an_image(runs):
    cache, _, (_, cached), calls = runs
    assert cached["status"] == "done", cached["error"]
    assert calls == {"tower": 0, "decode": 0, "eval decode": 0}
    assert len([p for p in cache.iterdir() if p.name.startswith("features-")]) == 1


def test_cached_training_equals_live_training(runs):
    _, (live_dir, live), (cached_dir, cached), _ = runs
    logs = [pd.read_csv(d / "logs" / "version_0" / "metrics.csv") for d in (live_dir, cached_dir)]
    for key in ("train/loss", "val/loss", "val/error/avg"):
        history = [log[key].dropna().tolist() for log in logs]
        assert history[0] == history[1] and len(history[0]) > 0, key
    assert len(logs[0]["train/loss"].dropna()) == 4
    weights = [
        torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for d in (live_dir, cached_dir)
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert live["metrics"] == cached["metrics"]  # the synthetic test split's scores, val metrics
    predictions = [(d / "eval" / "synthetic.predictions.jsonl").read_text() for d in (live_dir, cached_dir)]
    assert predictions[0] == predictions[1]
    # the cache changes no result: neither hash sees it, so either run's checkpoint resumes the other
    assert live["training_hash"] == cached["training_hash"] and live["config_hash"] == cached["config_hash"]
    assert read_result(cached_dir)["config"]["vision"]["feature_cache"] == "on"


def test_auto_leaves_a_training_tower_live(tmp_path):
    from vlmscale.build import build_datamodule, build_module

    cfg = config(tmp_path, tmp_path / "run", "vision.feature_cache=auto", "vision.freeze=false")
    module, tokenizer = build_module(cfg)
    datamodule = build_datamodule(cfg, tokenizer, module.vlm)
    assert all(ds.image_features is None for ds in datamodule.datasets.values())
    assert "pixel_values" in datamodule.datasets["train"][0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("features-")]


def test_forcing_the_cache_on_a_training_tower_is_refused(tmp_path):
    record = None
    with pytest.raises(
        ConfigError, match=r"vision.feature_cache=on: the vision tower trains .*vision.freeze=false"
    ):
        record = run(config(tmp_path, tmp_path / "run", "vision.feature_cache=on", "vision.freeze=false"))
    assert record is None
    failed = read_result(tmp_path / "run")
    assert failed["status"] == "failed" and failed["error"]["type"] == "ConfigError"
