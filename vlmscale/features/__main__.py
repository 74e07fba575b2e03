"""Build a training config's feature cache entry ahead of a sweep.

    python -m vlmscale.features build [overrides ...]     # the overrides of python -m vlmscale.train
    python -m vlmscale.features build llm=tiny-m vision=tiny-clip

Composes ``conf/train.yaml`` with the overrides (Hydra's compose API), builds the tower and the datasets the
run would build, computes the tower's output for every split's images (a progress bar) and prints the entry's
folder and size. Only the tower is built, never the LLM. A config problem is reported in one message with exit
status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"

log = logging.getLogger("vlmscale.features")


def compose_config(overrides: list[str]) -> dict[str, Any]:
    """The plain, resolved run config of ``python -m vlmscale.train <overrides>``, validated."""
    from hydra import compose, initialize_config_dir

    from vlmscale.assemble import check_config
    from vlmscale.contract import to_plain
    from vlmscale.validate import validate_config

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = to_plain(compose("train", overrides=overrides))
    cfg.pop("hydra", None)
    check_config(cfg)
    validate_config(cfg)
    return cfg


def reads_multilevel(compressor: dict[str, Any]) -> bool:
    """Whether the config's compressor reads the multi-level layers (from its registered class: no build)."""
    from vlmscale.models import COMPRESSORS

    name = compressor.get("type", compressor["name"])
    return name != "none" and bool(getattr(COMPRESSORS[name], "uses_multilevel", True))


def build(overrides: list[str]) -> tuple[Path, float]:
    """Build (or find) the entry of the config; returns its folder and the seconds it took."""
    import torch

    from vlmscale.assemble import resolve_pretrained_tower
    from vlmscale.data import build_datasets
    from vlmscale.features import prepare_features
    from vlmscale.features.policy import tower_allows
    from vlmscale.models import build_vision_tower

    cfg = compose_config(overrides)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    if cfg["vision"].get("feature_cache") == "off":
        log.warning("vision.feature_cache=off in this config: its runs will not read the entry built here")
    start = time.time()
    # Seeded as the run is when it builds its tower: a random tower gets the run's weights, hence its entry
    torch.manual_seed(int(cfg["seed"]))
    vision = resolve_pretrained_tower(dict(cfg["vision"]), cfg["paths"]["cache_dir"])
    tower = build_vision_tower(**vision)
    trains = any(p.requires_grad for p in tower.parameters())
    tower_allows(cfg["vision"]["feature_cache"], trains, required=True)  # refused before the data is built
    datasets = build_datasets(None, tower.image_processor, **cfg["data"])  # records and images; no tokens
    multilevel = reads_multilevel(cfg["compressor"])
    prepared = prepare_features(cfg, tower, multilevel, datasets, required=True, progress=True)
    assert prepared is not None  # required=True builds or raises
    return prepared[0], time.time() - start


def user_errors() -> tuple[type[BaseException], ...]:
    """What a user fixes from the message alone: the config, the overrides, the data files."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from vlmscale.data import LlavaFormatError, MissingImageError
    from vlmscale.validate import ConfigError

    return ConfigError, HydraException, OmegaConfBaseException, LlavaFormatError, MissingImageError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vlmscale.features",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="build every split's entry of a training config")
    build_cmd.add_argument(
        "overrides", nargs="*", help="Hydra overrides, as for python -m vlmscale.train (llm=tiny-m ...)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from vlmscale.features import entry_bytes

    try:
        folder, seconds = build(args.overrides)
    except user_errors() as err:
        print(f"python -m vlmscale.features build: {err}", file=sys.stderr)
        return 2
    size = entry_bytes(folder)
    print(f"{folder}\n{size} bytes ({size / 2**30:.3f} GiB), ready in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
