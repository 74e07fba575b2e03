"""Fixtures of the data tests: a tokenizer and image processor built offline, a small LLaVA-format folder."""

import json

import pytest
from PIL import Image

from vlmscale.data import load_tokenizer
from vlmscale.models.vision import default_image_processor


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("vlmscale-cache")


@pytest.fixture(scope="session")
def tokenizer(cache_dir):
    return load_tokenizer(None, cache_dir)


@pytest.fixture(scope="session")
def processor():
    return default_image_processor("clip", image_size=64)  # a CLIP processor, size and crop 64, no download


def _write_records(path, records, jsonl=False):
    if jsonl:
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    else:
        path.write_text(json.dumps(records, indent=1))
    return path


@pytest.fixture
def write_records():
    """``write_records(path, records, jsonl=False)``: write LLaVA records as a JSON list or JSONL."""
    return _write_records


@pytest.fixture
def llava_dir(tmp_path):
    """A LLaVA-format folder: images/ (square and tall), data.json with image, text-only and multi-turn records."""
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    Image.new("RGB", (64, 64), (255, 0, 0)).save(images / "red.png")
    Image.new("RGB", (32, 64), (0, 0, 255)).save(images / "sub" / "tall_blue.jpg")
    records = [
        {
            "id": "r0",
            "image": "red.png",
            "conversations": [
                {"from": "human", "value": "What color is the picture?\n<image>"},
                {"from": "gpt", "value": "red"},
            ],
        },
        {
            "id": "r1",
            "image": "sub/tall_blue.jpg",
            "category": "reasoning",
            "conversations": [
                {"from": "human", "value": "<image>\nIs it blue?"},
                {"from": "gpt", "value": "yes"},
                {"from": "human", "value": "Is it round?"},
                {"from": "gpt", "value": "no"},
            ],
        },
        {
            "id": "r2",
            "conversations": [
                {"from": "human", "value": "Say hello."},
                {"from": "gpt", "value": "hello"},
            ],
        },
    ]
    _write_records(tmp_path / "data.json", records)
    _write_records(tmp_path / "data.jsonl", records, jsonl=True)
    return tmp_path
