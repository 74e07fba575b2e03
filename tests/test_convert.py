"""`python -m vlmscale.convert seed-quecc`: a projector checkpoint laid out as the paper's reference code saves it
(``mm_projector.bin``: QueCC then LLaVA's MLP in one nn.Sequential) gives the same outputs once converted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from vlmscale.assemble import load_weights
from vlmscale.convert import load_state, main, seed_quecc_state
from vlmscale.models import (
    VisionFeatures,
    VisionLanguageModel,
    build_connector,
    build_llm,
    build_vision_tower,
)

CONF = Path(__file__).resolve().parents[1] / "conf"


def feature_mlp(in_width: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_width, width), nn.GELU(), nn.Linear(width, width), nn.LayerNorm(width, eps=1e-6)
    )


class SeedQueCC(nn.Module):
    """The reference's QueCC as described in the paper's code release: its parameter names and its forward
    (one nn.MultiheadAttention over a batch of (images x windows) sequences with one query each)."""

    def __init__(self, width: int, multilevel: int, text_width: int, grid: int, kernel: int, heads: int = 8):
        super().__init__()
        self.grid, self.kernel = grid, kernel
        self.clip_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.q_proj = feature_mlp(width, width)
        self.k_proj = feature_mlp(multilevel, width)
        self.v_proj = feature_mlp(multilevel, width)
        self.q_downsample = nn.Conv2d(width, width, kernel, stride=kernel, groups=width)
        self.text_projection = nn.Sequential(nn.Linear(text_width, width), nn.LayerNorm(width, eps=1e-6))

    def forward(self, inputs):
        multilevel, text, patches = inputs  # [B, G*G, M], [B, 1, text_width], [B, G*G, C]
        x = patches + self.text_projection(text)
        batch, _, width = x.shape
        q = self.q_proj(x).transpose(1, 2).reshape(batch, width, self.grid, self.grid)
        q = self.q_downsample(q)  # [B, C, side, side]
        side = q.shape[-1]
        q = q.permute(0, 2, 3, 1).reshape(batch * side * side, 1, width)

        def windows(y):  # [B, G*G, C] -> [B * side * side, k * k, C], windows in row-major order
            k = self.kernel
            y = y.reshape(batch, side, k, side, k, width).permute(0, 1, 3, 2, 4, 5)
            return y.reshape(batch * side * side, k * k, width)

        out = self.clip_attn(q, windows(self.k_proj(multilevel)), windows(self.v_proj(multilevel)))[0]
        return out.reshape(batch, side * side, width)


def conf(group: str, name: str) -> dict:
    cfg = yaml.safe_load((CONF / group / f"{name}.yaml").read_text())
    cfg.pop("defaults", None)
    return cfg


@pytest.fixture
def tiny_vlm():
    """tiny-clip (64 wide, 16 x 16 grid, 4 levels) + tiny-xs LLM + QueCC at T=16 (kernel 4)."""
    torch.manual_seed(0)
    tower = build_vision_tower(**conf("vision", "tiny-clip") | {"pretrain": None}, image_processor=False)
    llm = build_llm(**conf("llm", "tiny-xs"))
    connector = build_connector(
        "quecc",
        "mlp2x_gelu",
        num_heads=8,
        visual_tokens=16,
        vision_width=tower.hidden_size,
        multilevel_width=tower.multilevel_size,
        llm_width=llm.hidden_size,
        grid=tower.grid,
    )
    return VisionLanguageModel(tower, connector, llm, image_token_id=1, pad_token_id=0)


def seed_projector(vlm) -> nn.Sequential:
    """The reference's mm_projector for the same sizes, every parameter (biases included) random."""
    tower, width = vlm.vision, vlm.vision.hidden_size
    llm_width = vlm.llm.hidden_size
    torch.manual_seed(1)
    projector = nn.Sequential(
        SeedQueCC(width, tower.multilevel_size, llm_width, tower.grid, kernel=4),
        nn.Linear(width, llm_width),
        nn.GELU(),
        nn.Linear(llm_width, llm_width),
    )
    with torch.no_grad():
        for p in projector.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return projector.eval()


def inputs(vlm, batch: int = 3):
    g = torch.Generator().manual_seed(2)
    n = vlm.vision.num_patches
    patches = torch.randn(batch, n, vlm.vision.hidden_size, generator=g)
    multilevel = torch.randn(batch, n, vlm.vision.multilevel_size, generator=g)
    query = torch.randn(batch, vlm.llm.hidden_size, generator=g)
    return patches, multilevel, query


def test_converted_reference_checkpoint_gives_the_same_visual_tokens(tiny_vlm, tmp_path):
    seed = seed_projector(tiny_vlm)
    src, dst = tmp_path / "mm_projector.bin", tmp_path / "quecc.ckpt"
    torch.save({f"model.mm_projector.{k}": v for k, v in seed.state_dict().items()}, src)

    assert main(["seed-quecc", str(src), str(dst)]) == 0
    assert load_weights(tiny_vlm, dst) == ["connector"]  # strict: every name and shape matches

    patches, multilevel, query = inputs(tiny_vlm)
    with torch.no_grad():
        expected = seed((multilevel, query[:, None], patches))
        got = tiny_vlm.connector.eval()(VisionFeatures(patches, multilevel, tiny_vlm.vision.grid), query)
    assert got.shape == (3, 16, tiny_vlm.llm.hidden_size)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_key_bias_is_dropped_because_softmax_ignores_it(tiny_vlm):
    seed = seed_projector(tiny_vlm)
    state = seed_quecc_state(seed.state_dict())
    width = tiny_vlm.vision.hidden_size
    assert "compressor.attn.k_proj.bias" not in state
    torch.testing.assert_close(
        state["compressor.attn.v_proj.bias"], seed[0].clip_attn.in_proj_bias[2 * width :], rtol=0, atol=0
    )
    assert set(state) == set(tiny_vlm.connector.state_dict())


def test_not_a_quecc_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="expected one QueCC attention"):
        seed_quecc_state({"model.mm_projector.0.weight": torch.zeros(2, 2)})
    state = {"p.0.clip_attn.in_proj_weight": torch.zeros(6, 2), "p.0.lora_A": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"unrecognised reference QueCC parameters \['p.0.lora_A'\]"):
        seed_quecc_state(state)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_state(tmp_path / "missing.bin")
