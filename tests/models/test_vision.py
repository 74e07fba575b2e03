"""Vision tower: grid, selected layer without CLS, multi-level concatenation, freezing, depth validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vlmscale.models import build_vision_tower


@pytest.fixture(scope="module")
def tower(conf):
    torch.manual_seed(0)
    return build_vision_tower(**conf("vision", "tiny-clip") | {"pretrain": None})


def test_features_match_encoder_hidden_states(tower):
    pixels = torch.randn(2, 3, 64, 64)
    feats = tower(pixels)
    assert tower.grid == 16 and feats.grid == 16
    assert feats.patches.shape == (2, 256, 64)
    assert feats.multilevel.shape == (2, 256, 4 * 64) and tower.multilevel_size == 256
    hidden = tower.encoder(pixels, output_hidden_states=True).hidden_states
    torch.testing.assert_close(feats.patches, hidden[-2][:, 1:])  # penultimate layer, CLS dropped
    torch.testing.assert_close(feats.multilevel[..., 64:128], hidden[2][:, 1:])
    assert tower(pixels, multilevel=False).multilevel is None


def test_frozen_by_default_and_configurable(tower, conf):
    assert not any(p.requires_grad for p in tower.parameters())
    pixels = torch.randn(1, 3, 64, 64)
    assert not tower(pixels).patches.requires_grad
    cfg = conf("vision", "tiny-clip") | {"freeze": False, "pretrain": None}
    trainable = build_vision_tower(**cfg)
    out = trainable(pixels).patches
    assert out.requires_grad
    out.sum().backward()
    assert trainable.encoder.embeddings.patch_embedding.weight.grad is not None


def test_layer_beyond_depth_is_a_clear_error(conf):
    cfg = conf("vision", "tiny-clip") | {"pretrain": None}
    with pytest.raises(ValueError, match="beyond the encoder's depth: it has 4 layers"):
        build_vision_tower(**(cfg | {"multilevel_layers": [1, 2, 5]}))
    with pytest.raises(ValueError, match="select_layer"):
        build_vision_tower(**(cfg | {"select_layer": -6}))
    with pytest.raises(ValueError, match="pretrained"):
        build_vision_tower(name="x")


def test_image_processor_gives_tower_sized_pixels(tower):
    image = Image.fromarray((np.random.rand(50, 90, 3) * 255).astype("uint8"))
    pixels = tower.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 64, 64)
    assert tower(pixels).patches.shape == (1, 256, 64)


def test_siglip_config_has_no_cls():
    tower = build_vision_tower(
        name="tiny-siglip",
        config={
            "model_type": "siglip_vision_model",
            "image_size": 32,
            "patch_size": 4,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        multilevel_layers=[1, 2],
    )
    feats = tower(torch.randn(1, 3, 32, 32))
    assert feats.patches.shape == (1, 64, 32) and feats.multilevel.shape == (1, 64, 64)
