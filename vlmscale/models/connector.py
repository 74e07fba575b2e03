"""The Connector: vision features (+ the question's LLM state) -> T visual embeddings in the LLM's width.

It is an optional token compressor (``conf/compressor/``: quecc, quecc_noquery, avgpool, none) followed by a
projector (``conf/projector/``: mlp2x_gelu, linear, identity), LLaVA's "projector" generalised. The two are
chosen independently, so ``compressor=avgpool projector=linear`` composes.
"""

from __future__ import annotations

import torch
from torch import nn

from .compressors import Compressor, build_compressor
from .projectors import build_projector
from .vision import VisionFeatures

NO_COMPRESSOR = "none"


class Connector(nn.Module):
    """VisionFeatures (+ question vector) -> [B, T, llm_width] visual embeddings for the LLM."""

    def __init__(
        self, compressor: Compressor | None, projector: nn.Module, visual_tokens: int, name: str = ""
    ) -> None:
        super().__init__()
        self.name = name
        self.compressor = compressor  # registered before the projector: same parameter order as ever
        self.projector = projector
        self.visual_tokens = visual_tokens

    @property
    def needs_query(self) -> bool:
        return self.compressor is not None and self.compressor.uses_query

    @property
    def needs_multilevel(self) -> bool:
        return self.compressor is not None and self.compressor.uses_multilevel

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
                f"connector without a compressor got {x.shape[1]} tokens, expected {self.visual_tokens}"
            )
        return self.projector(x)

    def flops(self) -> dict[str, float]:
        """Matmul FLOPs for one image: the compressor's and the projector's (2 per multiply-add over T)."""
        compressor = float(self.compressor.flops()) if self.compressor is not None else 0.0
        linear_macs = sum(
            m.in_features * m.out_features for m in self.projector.modules() if isinstance(m, nn.Linear)
        )
        return {"compressor": compressor, "projector_mlp": 2.0 * linear_macs * self.visual_tokens}


def build_connector(
    compressor: str | None = "quecc",
    projector: str = "mlp2x_gelu",
    *,
    visual_tokens: int,
    vision_width: int,
    multilevel_width: int,
    llm_width: int,
    grid: int,
    **compressor_options,
) -> Connector:
    """The compressor (name + options from ``conf/compressor/``) and projector (``conf/projector/``) around
    the widths of the built tower and LLM. ``compressor`` None or "none": all G x G patches, so T = G^2."""
    compressor = None if compressor in (None, NO_COMPRESSOR) else compressor
    name = f"{compressor or NO_COMPRESSOR}-{projector}"
    if compressor is None:
        if compressor_options:
            raise ValueError(f"options {sorted(compressor_options)} given but compressor=none")
        if visual_tokens != grid * grid:
            raise ValueError(
                f"compressor=none keeps every patch, so visual_tokens must be the full grid "
                f"{grid}x{grid} = {grid * grid}, got {visual_tokens}; pick a compressor (quecc, avgpool) for fewer"
            )
        return Connector(None, build_projector(projector, vision_width, llm_width), visual_tokens, name)
    comp = build_compressor(
        compressor, vision_width, multilevel_width, llm_width, grid, visual_tokens, **compressor_options
    )
    return Connector(comp, build_projector(projector, comp.out_width, llm_width), visual_tokens, name)
