"""QueCC and the other compressors: shapes, locality, the query's effect, padding invariance, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vlmscale.models import (
    VisionFeatures,
    build_compressor,
    build_connector,
    kernel_for_tokens,
    valid_token_counts,
)
from vlmscale.models.quecc import QueCC

PAPER_T = [1, 4, 16, 36, 64, 144, 576]
PAPER = {"vision_width": 1024, "multilevel_width": 4096, "llm_width": 4096, "grid": 24}


def inputs(batch: int, grid: int, width: int, ml_width: int, q_width: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = grid * grid
    return (
        torch.randn(batch, n, width, generator=g),
        torch.randn(batch, n, ml_width, generator=g),
        torch.randn(batch, q_width, generator=g),
    )


def test_valid_token_counts_and_kernel():
    assert valid_token_counts(24) == [1, 4, 9, 16, 36, 64, 144, 576]
    assert [kernel_for_tokens(24, t) for t in PAPER_T] == [24, 12, 6, 4, 3, 2, 1]
    assert valid_token_counts(16) == [1, 4, 16, 64, 256]


@pytest.mark.parametrize("bad", [50, 25, 0, 2, 577])
def test_invalid_t_lists_the_valid_ones(bad):
    for name in ("quecc", "quecc_noquery", "avgpool"):
        with pytest.raises(ValueError, match=r"valid values are \[1, 4, 9, 16, 36, 64, 144, 576\]"):
            build_compressor(name, 64, 256, 32, 24, bad)


@torch.no_grad()
def test_paper_dimension_shapes_every_t():
    """G=24, vision width 1024, multi-level 4096, LLM width 4096: [1, T, 4096] out of the full connector."""
    torch.manual_seed(0)
    patches, multilevel, query = inputs(1, 24, 1024, 4096, 4096)
    features = VisionFeatures(patches, multilevel, 24)
    for t in PAPER_T:
        for name in ("quecc", "quecc_noquery", "avgpool"):
            comp = build_compressor(name, 1024, 4096, 4096, 24, t)
            assert comp(patches, multilevel, query).shape == (1, t, 1024)
    # The whole path (compressor + mlp2x_gelu) into the LLM's width, for every T.
    for t in PAPER_T:
        proj = build_connector("quecc", "mlp2x_gelu", visual_tokens=t, **PAPER)
        assert proj(features, query).shape == (1, t, 4096)
    full = build_connector("none", "mlp2x_gelu", visual_tokens=576, **PAPER)
    assert full(features).shape == (1, 576, 4096)


@torch.no_grad()
def test_tiny_shapes_every_t():
    patches, multilevel, query = inputs(2, 16, 64, 256, 32)
    for t in valid_token_counts(16):
        for name in ("quecc", "quecc_noquery", "avgpool"):
            out = build_compressor(name, 64, 256, 32, 16, t)(patches, multilevel, query)
            assert out.shape == (2, t, 64)


def window_of(index: int, grid: int, kernel: int) -> set[int]:
    side = grid // kernel
    r, c = divmod(index, side)
    return {(r * kernel + i) * grid + c * kernel + j for i in range(kernel) for j in range(kernel)}


@torch.no_grad()
@pytest.mark.parametrize("t", [4, 16, 64])
def test_locality_outside_window_changes_nothing(t):
    torch.manual_seed(0)
    grid = 16
    comp = QueCC(64, 256, 32, grid, t, num_heads=4).eval()
    patches, multilevel, query = inputs(1, grid, 64, 256, 32)
    base = comp(patches, multilevel, query)
    token = t // 2 + 1
    inside = window_of(token, grid, comp.kernel)
    outside = torch.tensor(sorted(set(range(grid * grid)) - inside))
    p2, m2 = patches.clone(), multilevel.clone()
    p2[:, outside] += torch.randn_like(p2[:, outside]) * 3
    m2[:, outside] += torch.randn_like(m2[:, outside]) * 3
    moved = comp(p2, m2, query)
    torch.testing.assert_close(moved[:, token], base[:, token])
    others = [i for i in range(t) if i != token]
    assert (moved[:, others] - base[:, others]).abs().max() > 1e-3  # the change did land elsewhere
    # ... and changing a patch inside the window does change token i.
    p3 = patches.clone()
    p3[:, min(inside)] += 3
    assert (comp(p3, multilevel, query)[:, token] - base[:, token]).abs().max() > 1e-4


@torch.no_grad()
def test_query_changes_output_and_noquery_ignores_it():
    torch.manual_seed(0)
    patches, multilevel, query = inputs(2, 16, 64, 256, 32)
    quecc = QueCC(64, 256, 32, 16, 16, num_heads=4)
    assert (quecc(patches, multilevel, query) - quecc(patches, multilevel, -query)).abs().max() > 1e-3
    noquery = build_compressor("quecc_noquery", 64, 256, 32, 16, 16, num_heads=4)
    assert noquery.query_proj is None
    torch.testing.assert_close(noquery(patches, multilevel, query), noquery(patches, multilevel, None))


@torch.no_grad()
@pytest.mark.parametrize("t", [1, 16, 256])
def test_matches_multihead_attention_over_windows(t):
    """Same maths as nn.MultiheadAttention over a (batch x windows) batch with one query each."""
    torch.manual_seed(0)
    grid, width, heads = 16, 64, 4
    comp = QueCC(width, 256, 32, grid, t, num_heads=heads)
    patches, multilevel, query = inputs(2, grid, width, 256, 32)
    ours = comp(patches, multilevel, query)

    mha = nn.MultiheadAttention(width, heads, batch_first=True)
    a = comp.attn
    mha.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
    # Any key bias will do: it shifts every score of a query alike, which the softmax ignores.
    mha.in_proj_bias.copy_(torch.cat([a.q_proj.bias, torch.randn(width), a.v_proj.bias]))
    mha.out_proj.load_state_dict(a.out_proj.state_dict())
    k, side = comp.kernel, grid // comp.kernel
    x = patches + comp.query_proj(query).unsqueeze(1)
    q = comp.downsample(comp.q_mlp(x).transpose(1, 2).reshape(2, width, grid, grid))
    q = q.flatten(2).transpose(1, 2).reshape(2 * t, 1, width)

    def windows(y):
        y = y.view(2, side, k, side, k, width).permute(0, 1, 3, 2, 4, 5)
        return y.reshape(2 * t, k * k, width)

    ref = mha(q, windows(comp.k_mlp(multilevel)), windows(comp.v_mlp(multilevel)))[0].reshape(2, t, width)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_mismatched_widths_are_clear_errors():
    patches, multilevel, query = inputs(1, 16, 64, 256, 32)
    comp = QueCC(64, 256, 32, 16, 4, num_heads=4)
    with pytest.raises(ValueError, match="mismatched widths"):
        comp(patches[..., :48], multilevel, query)
    with pytest.raises(ValueError, match="multi-level"):
        comp(patches, multilevel[..., :128], query)
    with pytest.raises(ValueError, match="LLM width"):
        comp(patches, multilevel, query[:, :16])
    with pytest.raises(ValueError, match="query"):
        comp(patches, multilevel, None)
    with pytest.raises(ValueError, match="divisible"):
        QueCC(64, 256, 32, 16, 4, num_heads=5)
    with pytest.raises(ValueError, match="mismatched widths"):
        build_connector(
            None,
            "identity",
            visual_tokens=256,
            vision_width=64,
            multilevel_width=256,
            llm_width=32,
            grid=16,
        )
    with pytest.raises(ValueError, match="visual_tokens must be the full grid"):
        build_connector(
            "none",
            "mlp2x_gelu",
            visual_tokens=16,
            vision_width=64,
            multilevel_width=256,
            llm_width=32,
            grid=16,
        )
    with pytest.raises(ValueError, match="unknown compressor"):
        build_compressor("nope", 64, 256, 32, 16, 4)
