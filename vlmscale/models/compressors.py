"""Token compressors (the first half of the Connector, before the projector), their interface and registry.

Every compressor has the same constructor signature (vision width, multi-level width, query width, grid,
visual_tokens, options) and accepts exactly the T values a G x G grid tiles into, so a sweep over T can swap
compressors freely. ``forward(patches, multilevel, query) -> [B, T, out_width]``.

Adding one: a class here (or in its own module, like QueCC) decorated with ``@register_compressor("name")``
that satisfies :class:`Compressor`, and ``conf/compressor/<name>.yaml`` with its options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from .quecc import QueCC, check_query_mode, kernel_for_tokens


@runtime_checkable
class Compressor(Protocol):
    """What the Connector and the FLOP count rely on; :func:`check_compressor` enforces it at build time."""

    uses_query: bool  # needs the question's LLM state (the QueCC query pass runs only then)
    uses_multilevel: bool  # needs the tower's concatenated multi-layer features

    @property
    def out_width(self) -> int:  # channels of the [B, T, C] output, the projector's input width
        ...

    def flops(self) -> float:  # matmul FLOPs for one image
        ...

    def __call__(
        self, patches: torch.Tensor, multilevel: torch.Tensor | None = None, query: torch.Tensor | None = None
    ) -> torch.Tensor: ...


def check_compressor(compressor: object, name: str) -> None:
    """Raise a TypeError naming what ``compressor`` lacks of the :class:`Compressor` interface."""
    problems = []
    for flag in ("uses_query", "uses_multilevel"):
        if not isinstance(getattr(compressor, flag, None), bool):
            problems.append(f"`{flag}` must be a bool")
    if not isinstance(getattr(compressor, "out_width", None), int):
        problems.append("`out_width` must be an int (property or attribute)")
    if not callable(getattr(compressor, "flops", None)):
        problems.append("`flops()` must be a method returning the FLOPs for one image")
    if problems or not isinstance(compressor, Compressor):
        raise TypeError(
            f"compressor {name!r} ({type(compressor).__name__}) does not implement the Compressor interface: "
            f"{'; '.join(problems) or 'not callable'} (see vlmscale/models/compressors.py)"
        )


COMPRESSORS: dict[str, type[nn.Module]] = {}


def register_compressor(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        COMPRESSORS[name] = cls
        return cls

    return add


register_compressor("quecc")(QueCC)


@register_compressor("quecc_noquery")
class QueCCNoQuery(QueCC):
    """QueCC without the text query (TokenPacker-like): isolates what the question contributes."""

    def __init__(self, *args, **options) -> None:  # QueCC's arguments (num_heads, eps), never a query
        super().__init__(*args, use_query=False, **options)


@register_compressor("avgpool")
class AvgPool(nn.Module):
    """Average-pool the patch grid to sqrt(T) x sqrt(T) (the Matryoshka-style baseline); no parameters."""

    uses_query: bool = False
    uses_multilevel: bool = False

    def __init__(
        self,
        vision_width: int,
        multilevel_width: int,
        query_width: int,
        grid: int,
        visual_tokens: int,
        query: str = "separate",  # query-free: prefix only reorders the prompt (question before image)
        detach_query: bool = True,
    ) -> None:
        super().__init__()
        self.query_mode = check_query_mode(query)
        self.detach_query = bool(detach_query)
        self.vision_width = vision_width
        self.grid = grid
        self.visual_tokens = visual_tokens
        self.kernel = kernel_for_tokens(grid, visual_tokens)  # same T as QueCC, same error for a bad T

    @property
    def out_width(self) -> int:
        return self.vision_width

    def forward(
        self, patches: torch.Tensor, multilevel: torch.Tensor | None = None, query: torch.Tensor | None = None
    ) -> torch.Tensor:
        n = self.grid * self.grid
        if patches.dim() != 3 or patches.shape[1:] != (n, self.vision_width):
            raise ValueError(
                f"avgpool expects patches [B, {n}, {self.vision_width}], got {list(patches.shape)}"
            )
        batch = patches.shape[0]
        grid = patches.transpose(1, 2).reshape(batch, self.vision_width, self.grid, self.grid)
        # k divides G, so adaptive pooling to (G/k, G/k) averages exactly the same k x k windows QueCC uses.
        pooled = F.adaptive_avg_pool2d(grid, self.grid // self.kernel)
        return pooled.flatten(2).transpose(1, 2)

    def flops(self) -> float:
        return float(self.grid**2 * self.vision_width)  # one add per input element


def build_compressor(
    name: str,
    vision_width: int,
    multilevel_width: int,
    query_width: int,
    grid: int,
    visual_tokens: int,
    **options,
) -> nn.Module:
    if name not in COMPRESSORS:
        raise ValueError(
            f"unknown compressor {name!r}; registered: {sorted(COMPRESSORS)} (config group `compressor=`, "
            "or `compressor=none` for all G x G patches)"
        )
    compressor = COMPRESSORS[name](
        vision_width, multilevel_width, query_width, grid, visual_tokens, **options
    )
    check_compressor(compressor, name)
    return compressor
