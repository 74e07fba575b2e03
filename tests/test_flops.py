"""Parameter counts and FLOPs: the paper's 2N(Q+T) and the fuller count, checked against torch's counter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from vlmscale.flops import inference_flops, llm_params
from vlmscale.models import VisionFeatures, build_compressor, build_connector, build_llm, build_vision_tower

CONF = Path(__file__).resolve().parents[1] / "conf"


def conf(group: str, name: str) -> dict:
    cfg = yaml.safe_load((CONF / group / f"{name}.yaml").read_text())
    cfg.pop("defaults", None)  # Hydra's defaults list (e.g. a tiny LLM's optim choice) is not a builder kwarg
    return cfg


def counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def counter_sees_sdpa() -> bool:
    """torch's counter has no formula for the CPU SDPA kernel; then the tests add attention by hand."""
    q = torch.randn(2, 2, 4, 8)
    return counted(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q)) > 0


def test_inference_flops_is_the_papers_measure():
    assert inference_flops(1e9, 30, 1) == 2 * 1e9 * 31
    assert inference_flops(7e9, 40.5, 576) == pytest.approx(2 * 7e9 * 616.5)


@pytest.mark.parametrize("tied", [True, False])
def test_llm_params_total_and_non_embedding(tied):
    cfg = conf("llm", "tiny-xs")
    cfg["config"] = cfg["config"] | {"tie_word_embeddings": tied, "vocab_size": 100}
    model = build_llm(**cfg).model
    counts = llm_params(model)
    unique = {id(p): p.numel() for p in model.parameters()}
    assert counts["total"] == sum(unique.values())
    embed = 100 * 32 * (1 if tied else 2)
    assert counts["non_embedding"] == counts["total"] - embed
    layers = model.model.layers
    assert counts["non_embedding"] == sum(p.numel() for p in layers.parameters()) + 32  # + final norm


@pytest.mark.parametrize("name,t", [("quecc", 16), ("quecc", 256), ("quecc_noquery", 4)])
def test_compressor_and_mlp_flops_match_torch_counter(name, t):
    torch.manual_seed(0)
    proj = build_connector(
        name,
        "mlp2x_gelu",
        visual_tokens=t,
        vision_width=64,
        multilevel_width=256,
        llm_width=32,
        grid=16,
        num_heads=4,
    )
    feats = VisionFeatures(torch.randn(1, 256, 64), torch.randn(1, 256, 256), 16)
    query = torch.randn(1, 32)
    expected = proj.flops()
    total = counted(lambda: proj.compressor(feats.patches, feats.multilevel, query))
    if (
        not counter_sees_sdpa()
    ):  # scores + weighted sums: each of the 256 patches meets one query per head (4),
        # over the full width when k > 1, over one head's slice when k = 1 (T = 256)
        total += 2 * (2 * 256 * 64 * (4 if t < 256 else 1))
    assert total == expected["compressor"]
    compressed = proj.compressor(feats.patches, feats.multilevel, query)
    assert counted(lambda: proj.projector(compressed)) == expected["projector_mlp"]


def test_avgpool_has_no_matmuls_and_paper_scale_numbers():
    comp = build_compressor("avgpool", 1024, 4096, 4096, 24, 16)
    assert comp.flops() == 576 * 1024
    quecc = build_compressor("quecc", 1024, 4096, 4096, 24, 16)
    # Key/value MLPs over all 576 patches dominate and do not depend on T.
    kv = 2 * 2 * 576 * (4096 * 1024 + 1024 * 1024)
    assert kv / quecc.flops() > 0.6


def test_vision_tower_flops_match_torch_counter():
    tower = build_vision_tower(**{**conf("vision", "tiny-clip"), "pretrain": None})
    pixels = torch.randn(1, 3, 64, 64)
    total = counted(lambda: tower(pixels))
    if not counter_sees_sdpa():  # 4 layers of self-attention over 257 tokens (CLS + 256 patches), width 64
        total += 4 * 2 * (2 * 257 * 257 * 64)
    assert total == tower.flops()
