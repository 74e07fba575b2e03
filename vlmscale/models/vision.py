"""Vision tower: a Hugging Face CLIP/SigLIP encoder that returns patch features on a square grid.

LLaVA-1.5 takes the penultimate layer (``select_layer=-2``) and drops the CLS token. QueCC additionally reads
several layers at once (the paper: 12, 16, 22, 23 of CLIP ViT-L/14-336) concatenated along the channel axis, so
the tower returns both from one encoder pass.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vlmscale.contract import to_plain

from .dtypes import resolve_dtype

# Vision-only model class per config model_type. A full CLIP/SigLIP checkpoint (text + vision) loads its vision
# half through these classes, so the text tower is never built.
_VISION_MODEL_CLASSES = {
    "clip": "CLIPVisionModel",
    "clip_vision_model": "CLIPVisionModel",
    "siglip": "SiglipVisionModel",
    "siglip_vision_model": "SiglipVisionModel",
}
_IMAGE_PROCESSOR_CLASSES = {"clip": "CLIPImageProcessor", "siglip": "SiglipImageProcessor"}


@dataclass
class VisionFeatures:
    """What the tower hands to a projector. Patches are in row-major grid order (index = row * grid + col)."""

    patches: torch.Tensor  # [B, grid * grid, hidden_size], the selected layer
    multilevel: torch.Tensor | None  # [B, grid * grid, multilevel_size], or None when not requested
    grid: int

    def rows(self, index: torch.Tensor) -> VisionFeatures:
        """The features of some rows of the batch (a boolean mask or indices)."""
        multilevel = None if self.multilevel is None else self.multilevel[index]
        return VisionFeatures(self.patches[index], multilevel, self.grid)


def _family(model_type: str) -> str:
    return "siglip" if model_type.startswith("siglip") else "clip"


class VisionTower(nn.Module):
    """Wraps an HF vision encoder; ``forward(pixel_values) -> VisionFeatures``.

    ``select_layer`` and ``multilevel_layers`` index the encoder's ``hidden_states`` tuple (0 = embeddings,
    ``num_layers`` = last layer; negative values count from the end), as LLaVA does.
    """

    def __init__(
        self,
        encoder: nn.Module,
        select_layer: int = -2,
        multilevel_layers: Sequence[int] = (12, 16, 22, 23),
        freeze: bool = True,
        image_processor: Any = None,
        name: str = "",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.name = name
        self.image_processor = image_processor
        config = encoder.config
        self.num_layers: int = config.num_hidden_layers
        self.hidden_size: int = config.hidden_size
        self.grid: int = (
            config.image_size // config.patch_size
        )  # the patch conv floors (SigLIP: 384 // 14 = 27)
        self.image_size: int = config.image_size
        self.num_patches: int = self.grid * self.grid
        self.select_layer = self._check_layer(select_layer, "select_layer")
        self.multilevel_layers = [self._check_layer(i, "multilevel_layers") for i in multilevel_layers]
        self.multilevel_size: int = self.hidden_size * len(self.multilevel_layers)
        if freeze:
            self.encoder.requires_grad_(False)

    def _check_layer(self, index: int, what: str) -> int:
        depth = self.num_layers
        if not -(depth + 1) <= int(index) <= depth:
            raise ValueError(
                f"{what} index {index} is beyond the encoder's depth: it has {depth} layers, so hidden_states "
                f"indices run from 0 (embeddings) to {depth} (or -{depth + 1}..-1)"
            )
        return int(index)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    def forward(self, pixel_values: torch.Tensor, multilevel: bool = True) -> VisionFeatures:
        # A frozen tower needs no graph; an unfrozen one (a training stage may unfreeze it) keeps gradients.
        trainable = any(p.requires_grad for p in self.encoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and trainable):
            out = self.encoder(pixel_values.to(self.dtype), output_hidden_states=True)
            hidden = out.hidden_states
            # CLIP prepends a CLS token, SigLIP has none: keep the last grid*grid tokens either way.
            patches = hidden[self.select_layer][:, -self.num_patches :]
            levels = None
            if multilevel and self.multilevel_layers:
                levels = torch.cat(
                    [hidden[i][:, -self.num_patches :] for i in self.multilevel_layers], dim=-1
                )
        return VisionFeatures(patches=patches, multilevel=levels, grid=self.grid)

    def layer_index(self, index: int) -> int:
        """A ``hidden_states`` index counted from the start (-2 of a 4-layer encoder -> 3)."""
        return int(index) % (self.num_layers + 1)

    def feature_layers(self, multilevel: bool = True) -> list[int]:
        """The ``hidden_states`` indices :meth:`forward` reads, counted from the start, sorted, each once: the
        selected layer and, with ``multilevel``, the multi-level ones (what a feature cache stores)."""
        layers = [self.select_layer, *(self.multilevel_layers if multilevel else [])]
        return sorted({self.layer_index(i) for i in layers})

    @torch.no_grad()
    def hidden_layers(self, pixel_values: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
        """``[B, len(layers), grid * grid, hidden_size]``: the patch tokens (CLS dropped) of those
        ``hidden_states`` layers, from the same encoder pass as :meth:`forward` (feature caches build on it)."""
        hidden = self.encoder(pixel_values.to(self.dtype), output_hidden_states=True).hidden_states
        return torch.stack([hidden[i][:, -self.num_patches :] for i in layers], dim=1)

    def flops(self) -> float:
        """Matmul FLOPs of one image through the whole encoder (HF runs every layer, whatever layer is read)."""
        cfg = self.encoder.config
        # CLS (CLIP) or not (SigLIP): the embeddings module knows how many positions the encoder runs over.
        tokens = next(m.num_positions for m in self.encoder.modules() if hasattr(m, "num_positions"))
        width, inner = cfg.hidden_size, cfg.intermediate_size
        patch_embed = self.num_patches * cfg.num_channels * cfg.patch_size**2 * width
        per_layer = tokens * (4 * width * width + 2 * width * inner) + 2 * tokens * tokens * width
        return 2.0 * (patch_embed + self.num_layers * per_layer)


def _processor_class(family: str):
    import transformers

    name = _IMAGE_PROCESSOR_CLASSES[family]
    # The default processors need torchvision; the PIL ones give the same pixels without it.
    if importlib.util.find_spec("torchvision") is None:
        name += "Pil"
    return getattr(transformers, name)


def default_image_processor(family: str, image_size: int):
    """The processor of a tower built from a config: resize + centre crop to ``image_size``, the family's
    normalisation (CLIP or SigLIP)."""
    cls = _processor_class(family)
    if family == "siglip":
        return cls(size={"height": image_size, "width": image_size})
    return cls(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})


def build_vision_tower(
    name: str,
    pretrained: str | None = None,
    config: Mapping[str, Any] | None = None,
    select_layer: int = -2,
    multilevel_layers: Sequence[int] = (12, 16, 22, 23),
    freeze: bool = True,
    dtype: str | None = "float32",
    image_processor: bool = True,
    pretrain: Mapping[str, Any] | None = None,
    feature_cache: str = "auto",
) -> VisionTower:
    """Build from an HF name/local path (``pretrained``) or from a config dict with a ``model_type`` key.

    ``image_processor=False`` leaves the processor out (``tower.image_processor`` is None): code that feeds
    pixel tensors itself, such as benchmarks, then needs no Pillow/torchvision. ``pretrain`` is the config
    group's recipe for weights that come from a short pretraining (:mod:`vlmscale.tower_pretrain`, run by
    :func:`vlmscale.assemble.build_model`, which then passes the cached folder as ``pretrained``); a tower is
    never built from it here, so a random tower cannot silently stand in for a pretrained one.
    ``feature_cache`` (auto/on/off) is the group's choice of reading this tower's output from a cache rather
    than running it: the training data pipeline acts on it (:mod:`vlmscale.features`), the tower is the same.
    """
    import transformers

    torch_dtype = resolve_dtype(dtype)
    if pretrain is not None and pretrained is None:
        raise ValueError(
            f"vision tower {name!r} asks for pretraining (`pretrain`): build it through "
            "vlmscale.assemble.build_model, or pass pretrained=vlmscale.tower_pretrain.ensure_pretrained_tower("
            "config, **pretrain); pretrain=None gives the random tower"
        )
    if pretrained is not None:
        model_type = transformers.AutoConfig.from_pretrained(pretrained).model_type
        cls = getattr(transformers, _VISION_MODEL_CLASSES.get(model_type, "AutoModel"))
        encoder = cls.from_pretrained(pretrained, dtype=torch_dtype)
        processor = transformers.AutoImageProcessor.from_pretrained(pretrained) if image_processor else None
    elif config is not None:
        cfg = dict(to_plain(config))
        model_type = cfg.pop("model_type", "clip_vision_model")
        hf_config = transformers.AutoConfig.for_model(model_type, **cfg)
        cls = getattr(transformers, _VISION_MODEL_CLASSES.get(model_type, "AutoModel"))
        encoder = cls._from_config(hf_config, dtype=torch_dtype)
        processor = (
            default_image_processor(_family(model_type), hf_config.image_size) if image_processor else None
        )
    else:
        raise ValueError("vision tower needs either `pretrained` (HF name or path) or `config`")
    return VisionTower(
        encoder,
        select_layer=select_layer,
        multilevel_layers=list(to_plain(multilevel_layers) or []),
        freeze=freeze,
        image_processor=processor,
        name=name,
    )
