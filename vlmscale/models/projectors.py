"""The projector zoo: an optional token compressor followed by an MLP into the LLM's embedding space.

``mlp2x_gelu`` is LLaVA-1.5's projector (Linear -> GELU -> Linear); ``linear`` and ``identity`` are the simpler
LLaVA options. Compressors (``quecc``, ``quecc_noquery``, ``avgpool``) come from :mod:`.compressors`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn

from .compressors import build_compressor
from .vision import VisionFeatures

MLPS: dict[str, Callable[[int, int], nn.Module]] = {}


def register_mlp(name: str) -> Callable[[Callable[[int, int], nn.Module]], Callable[[int, int], nn.Module]]:
    def add(fn: Callable[[int, int], nn.Module]) -> Callable[[int, int], nn.Module]:
        MLPS[name] = fn
        return fn

    return add


@register_mlp("linear")
def linear_projector(in_width: int, out_width: int) -> nn.Module:
    return nn.Linear(in_width, out_width)


@register_mlp("identity")
def identity_projector(in_width: int, out_width: int) -> nn.Module:
    if in_width != out_width:
        raise ValueError(
            f"identity projector needs matching widths, got vision/compressor width {in_width} and LLM width "
            f"{out_width} (mismatched widths: use linear or mlp2x_gelu)"
        )
    return nn.Identity()


def gelu_mlp(in_width: int, out_width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(in_width, out_width)]
    for _ in range(depth - 1):
        layers += [nn.GELU(), nn.Linear(out_width, out_width)]
    return nn.Sequential(*layers)


def build_mlp(kind: str, in_width: int, out_width: int) -> nn.Module:
    """A registered MLP, or ``mlp<N>x_gelu`` for any depth N (LLaVA's naming)."""
    if kind in MLPS:
        return MLPS[kind](in_width, out_width)
    match = re.fullmatch(r"mlp(\d+)x_gelu", kind)
    if match:
        return gelu_mlp(in_width, out_width, int(match.group(1)))
    raise ValueError(f"unknown projector mlp {kind!r}; use one of {sorted(MLPS)} or mlp<N>x_gelu")


class Projector(nn.Module):
    """VisionFeatures (+ question vector) -> [B, T, llm_width] visual embeddings for the LLM."""

    def __init__(
        self, mlp: nn.Module, compressor: nn.Module | None, visual_tokens: int, name: str = ""
    ) -> None:
        super().__init__()
        self.name = name
        self.compressor = compressor
        self.mlp = mlp
        self.visual_tokens = visual_tokens

    @property
    def needs_query(self) -> bool:
        return bool(getattr(self.compressor, "uses_query", False))

    @property
    def needs_multilevel(self) -> bool:
        return bool(getattr(self.compressor, "uses_multilevel", False))

    @property
    def dtype(self) -> torch.dtype:
        param = next(self.parameters(), None)
        return param.dtype if param is not None else torch.float32

    def forward(self, features: VisionFeatures, query: torch.Tensor | None = None) -> torch.Tensor:
        dtype = self.dtype
        x = features.patches.to(dtype)
        if self.compressor is not None:
            multilevel = features.multilevel.to(dtype) if features.multilevel is not None else None
            x = self.compressor(x, multilevel, query.to(dtype) if query is not None else None)
        elif x.shape[1] != self.visual_tokens:
            raise ValueError(
                f"projector without a compressor got {x.shape[1]} tokens, expected {self.visual_tokens}"
            )
        return self.mlp(x)

    def flops(self) -> dict[str, float]:
        """Matmul FLOPs for one image: the compressor's and the MLP's (2 per multiply-add over T tokens)."""
        compressor = float(self.compressor.flops()) if self.compressor is not None else 0.0
        linear_macs = sum(
            m.in_features * m.out_features for m in self.mlp.modules() if isinstance(m, nn.Linear)
        )
        return {"compressor": compressor, "projector_mlp": 2.0 * linear_macs * self.visual_tokens}


def build_projector(
    name: str,
    mlp: str = "mlp2x_gelu",
    compressor: str | None = None,
    *,
    visual_tokens: int,
    vision_width: int,
    multilevel_width: int,
    llm_width: int,
    grid: int,
    **compressor_options,
) -> Projector:
    """YAML keys (name, mlp, compressor, compressor options) + the widths of the built tower and LLM."""
    if compressor is None:
        if compressor_options:
            raise ValueError(f"options {sorted(compressor_options)} given but no compressor is configured")
        if visual_tokens != grid * grid:
            raise ValueError(
                f"projector {name!r} has no compressor, so visual_tokens must be the full grid "
                f"{grid}x{grid} = {grid * grid}, got {visual_tokens}; pick a compressor (quecc, avgpool) to use fewer"
            )
        return Projector(build_mlp(mlp, vision_width, llm_width), None, visual_tokens, name)
    comp = build_compressor(
        compressor, vision_width, multilevel_width, llm_width, grid, visual_tokens, **compressor_options
    )
    return Projector(build_mlp(mlp, comp.out_width, llm_width), comp, visual_tokens, name)
