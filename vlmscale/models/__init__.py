"""Model core: vision tower, token compressors, projectors, LLM wrapper and the assembled VLM (no Lightning)."""

from .compressors import COMPRESSORS, AvgPool, QueCCNoQuery, build_compressor, register_compressor
from .llm import IGNORE_INDEX, LanguageModel, SplicedInputs, build_llm
from .projectors import MLPS, Projector, build_mlp, build_projector, register_mlp
from .quecc import QueCC, kernel_for_tokens, valid_token_counts
from .vision import VisionFeatures, VisionTower, build_vision_tower
from .vlm import IMAGE_TOKEN, VisionLanguageModel, VLMOutput, build_vlm

__all__ = [
    "COMPRESSORS",
    "IGNORE_INDEX",
    "IMAGE_TOKEN",
    "MLPS",
    "AvgPool",
    "LanguageModel",
    "Projector",
    "QueCC",
    "QueCCNoQuery",
    "SplicedInputs",
    "VLMOutput",
    "VisionFeatures",
    "VisionLanguageModel",
    "VisionTower",
    "build_compressor",
    "build_llm",
    "build_mlp",
    "build_projector",
    "build_vision_tower",
    "build_vlm",
    "kernel_for_tokens",
    "register_compressor",
    "register_mlp",
    "valid_token_counts",
]
