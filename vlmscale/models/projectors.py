"""Projectors: the second half of the Connector, mapping (compressed) visual tokens into the LLM's width.

``mlp2x_gelu`` is LLaVA-1.5's projector (Linear -> GELU -> Linear); ``linear`` and ``identity`` are the simpler
LLaVA options; ``mlp<N>x_gelu`` gives any depth. Adding one: ``@register_projector("name")`` on a
``(in_width, out_width) -> nn.Module`` function and ``conf/projector/<name>.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn

PROJECTORS: dict[str, Callable[[int, int], nn.Module]] = {}


def register_projector(
    name: str,
) -> Callable[[Callable[[int, int], nn.Module]], Callable[[int, int], nn.Module]]:
    def add(fn: Callable[[int, int], nn.Module]) -> Callable[[int, int], nn.Module]:
        PROJECTORS[name] = fn
        return fn

    return add


@register_projector("linear")
def linear_projector(in_width: int, out_width: int) -> nn.Module:
    return nn.Linear(in_width, out_width)


@register_projector("identity")
def identity_projector(in_width: int, out_width: int) -> nn.Module:
    if in_width != out_width:
        raise ValueError(
            f"identity projector needs matching widths, got vision/compressor width {in_width} and LLM width "
            f"{out_width} (mismatched widths: use projector=linear or projector=mlp2x_gelu)"
        )
    return nn.Identity()


def gelu_mlp(in_width: int, out_width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(in_width, out_width)]
    for _ in range(depth - 1):
        layers += [nn.GELU(), nn.Linear(out_width, out_width)]
    return nn.Sequential(*layers)


def build_projector(name: str, in_width: int, out_width: int) -> nn.Module:
    """A registered projector, or ``mlp<N>x_gelu`` for any depth N (LLaVA's naming)."""
    if name in PROJECTORS:
        return PROJECTORS[name](in_width, out_width)
    match = re.fullmatch(r"mlp(\d+)x_gelu", name)
    if match:
        return gelu_mlp(in_width, out_width, int(match.group(1)))
    raise ValueError(f"unknown projector {name!r}; use one of {sorted(PROJECTORS)} or mlp<N>x_gelu")
