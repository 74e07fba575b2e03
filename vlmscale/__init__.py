"""vlmscale: scaling research for vision-language models (QueCC, Lightning + Hydra sweeps)."""

__version__ = "0.1.0"
