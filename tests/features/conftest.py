"""Fixtures of the feature cache tests: a tiny random tower, a small synthetic suite and a LLaVA-format folder,
each split read as training reads it."""

from __future__ import annotations

import json

import pytest
import torch
from feature_helpers import SIZES, make_tower
from PIL import Image

from vlmscale.data import build_datasets, load_tokenizer


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    return load_tokenizer(None, tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tower():
    return make_tower()


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    cache = tmp_path_factory.mktemp("suite")
    return {"source": "synthetic", "cache_dir": str(cache), "sizes": SIZES, "progress": False}


@pytest.fixture
def synthetic(synthetic_data, tokenizer, tower):
    """build_datasets(...) of the small suite: {split: LlavaDataset}."""
    return build_datasets(tokenizer, tower.image_processor, **synthetic_data)


@pytest.fixture
def llava_dir(tmp_path):
    """A LLaVA-format folder: a square PNG, a tall JPEG (padded), two records sharing an image, a text-only one."""
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    Image.new("RGB", (64, 64), (255, 0, 0)).save(images / "red.png")
    Image.new("RGB", (32, 64), (0, 0, 255)).save(images / "sub" / "tall_blue.jpg")
    noise = (torch.rand(48, 80, 3) * 255).to(torch.uint8).numpy()
    Image.fromarray(noise).save(images / "noise.png")

    def record(rid, image, question, answer):
        turns = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
        return {"id": rid, "conversations": turns, **({"image": image} if image else {})}

    records = [
        record("r0", "red.png", "<image>\nWhat color is it?", "red"),
        record("r1", "sub/tall_blue.jpg", "<image>\nIs it blue?", "yes"),
        record("r2", None, "Say hello.", "hello"),
        record("r3", "noise.png", "<image>\nIs it noisy?", "yes"),
        record("r4", "red.png", "Is it round?\n<image>", "no"),
    ]
    (tmp_path / "data.json").write_text(json.dumps(records))
    return tmp_path
