"""Model core: vision tower, connector (token compressor + projector), LLM wrapper and the assembled VLM.

Plain nn.Modules: nothing here imports Lightning or Hydra (tests/test_imports.py checks it)."""

from .compressors import COMPRESSORS, AvgPool, Compressor, QueCCNoQuery, build_compressor, register_compressor
from .connector import Connector, build_connector
from .dtypes import resolve_dtype
from .llm import LanguageModel, SplicedInputs, build_llm
from .projectors import PROJECTORS, build_projector, register_projector
from .quecc import QueCC, kernel_for_tokens, valid_token_counts
from .vision import VisionFeatures, VisionTower, build_vision_tower
from .vlm import VisionLanguageModel, VLMOutput, build_vlm

__all__ = [
    "COMPRESSORS",
    "PROJECTORS",
    "AvgPool",
    "Compressor",
    "Connector",
    "LanguageModel",
    "QueCC",
    "QueCCNoQuery",
    "SplicedInputs",
    "VLMOutput",
    "VisionFeatures",
    "VisionLanguageModel",
    "VisionTower",
    "build_compressor",
    "build_connector",
    "build_llm",
    "build_projector",
    "build_vision_tower",
    "build_vlm",
    "kernel_for_tokens",
    "register_compressor",
    "register_projector",
    "resolve_dtype",
    "valid_token_counts",
]
