"""From a config to a model and back from checkpoints, with no Lightning and no Hydra.

One home for what training (`vlmscale.build`, `vlmscale.train`) and evaluation (`python -m vlmscale.eval`)
both need: the config check (old spellings), tokenizer + VLM from the config groups, loading a checkpoint's
weights into a built model (a stage hand-over with ``init_from``, or the model to evaluate), the resume
checkpoint of a run folder, and which frozen weights a checkpoint may leave out.

A config is a composed Hydra config or the same thing as a plain dict (a run's ``result.json`` ``config``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vlmscale.contract import to_plain
from vlmscale.errors import MissingFileError, UserError

log = logging.getLogger("vlmscale.assemble")

PARTS = ("vision", "connector", "llm")  # the VLM's submodules, in build order; checkpoint keys "vlm.<part>."
LAST_CKPT = Path("checkpoints") / "last.ckpt"

# Checkpoints written before the Connector rename: the container was "projector" and its MLP "mlp".
_OLD_KEY_PREFIXES = {
    "vlm.projector.compressor.": "vlm.connector.compressor.",
    "vlm.projector.mlp.": "vlm.connector.projector.",
}


def check_config(cfg: Mapping[str, Any]) -> None:
    """Refuse configs that cannot mean what they say, with the fix: old spellings such as ``projector=quecc``
    (conf/projector/quecc.yaml carries ``renamed_to``) and a config without a ``compressor`` group."""
    projector = cfg.get("projector") or {}
    if projector.get("renamed_to"):
        raise UserError(
            f"projector={projector.get('name')} no longer exists: the compressor is its own config group; "
            f"use `{projector['renamed_to']}`"
        )
    if "mlp" in projector:  # a run config (result.json) written before the split
        old = projector.get("compressor") or "none"
        raise UserError(
            f"this config is from before the compressor/projector split (projector={projector.get('name')}); "
            f"use `compressor={old} projector={projector['mlp']}` (with python -m vlmscale.eval: "
            "use_run_config=false and those two overrides)"
        )
    if not cfg.get("compressor"):
        raise UserError(
            "the config has no `compressor` group: add compressor=quecc (or quecc_noquery, avgpool, none) "
            "next to projector=mlp2x_gelu (or linear, identity)"
        )


def build_tokenizer(cfg: Mapping[str, Any]):
    from vlmscale.data import load_tokenizer

    llm = cfg["llm"]
    return load_tokenizer(llm.get("tokenizer") or llm.get("pretrained"), cache_dir=cfg["paths"]["cache_dir"])


CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"


def group_config(group: str, name: str) -> dict[str, Any]:
    """One config group's YAML as the builder's keyword arguments (``conf/<group>/<name>.yaml``, Hydra's
    defaults list dropped), for code that builds parts without composing a whole run (benchmarks, notebooks)."""
    import yaml

    path = CONFIG_DIR / group / f"{name}.yaml"
    if not path.is_file():
        choices = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
        raise MissingFileError(f"no config {group}={name} ({path}); choose one of {choices}")
    cfg = yaml.safe_load(path.read_text())
    cfg.pop("defaults", None)
    return cfg


def build_model(cfg: Mapping[str, Any], weights: str | Path | None = None) -> tuple[Any, Any]:
    """Tokenizer and VisionLanguageModel built from the config groups (llm, vision, compressor, projector)
    and ``visual_tokens``; then, when given, ``weights`` (a checkpoint) loaded into it."""
    from vlmscale.models import build_vlm

    check_config(cfg)
    tokenizer = build_tokenizer(cfg)
    vision = resolve_pretrained_tower(
        to_plain(cfg["vision"]), to_plain(cfg.get("paths") or {}).get("cache_dir")
    )
    vlm = build_vlm(
        llm=to_plain(cfg["llm"]),
        vision=vision,
        compressor=to_plain(cfg["compressor"]),
        projector=to_plain(cfg["projector"]),
        visual_tokens=int(cfg["visual_tokens"]),
        tokenizer=tokenizer,
    )
    if weights:
        loaded = load_weights(vlm, weights)
        log.info("initialised %s from %s", ", ".join(loaded), weights)
    return tokenizer, vlm


def resolve_pretrained_tower(vision: dict[str, Any], cache_dir: str | None) -> dict[str, Any]:
    """A vision group with a ``pretrain`` recipe (the tiny CLIP) -> the same group pointing ``pretrained`` at
    the cached result of that pretraining (run once, shared by every run; :mod:`vlmscale.tower_pretrain`)."""
    recipe = vision.get("pretrain")
    if recipe is None or vision.get("pretrained"):
        return vision
    from vlmscale.tower_pretrain import ensure_pretrained_tower

    recipe = {"cache_dir": cache_dir, **recipe}
    folder = ensure_pretrained_tower(vision["config"], recipe.pop("cache_dir"), **recipe)
    return {**vision, "pretrained": str(folder), "config": None, "pretrain": None}


def upgrade_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """Keys of checkpoints from before the Connector rename, mapped to today's names (others unchanged)."""
    out = {}
    for key, value in state.items():
        for old, new in _OLD_KEY_PREFIXES.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def load_weights(vlm: Any, ckpt_path: str | Path) -> list[str]:
    """Copy what a checkpoint holds of ``vlm`` into it: always the connector (compressor + projector), and the
    LLM / tower too when they were randomly initialised and so stored. Returns the parts loaded.

    Loaded with ``weights_only=True``: a checkpoint is data, never code."""
    import torch

    path = Path(ckpt_path)
    if path.is_dir():
        raise UserError(
            f"{path} is a DeepSpeed (sharded) checkpoint folder; convert it first with "
            "lightning.pytorch.utilities.deepspeed.convert_zero_checkpoint_to_fp32_state_dict and pass the file"
        )
    if not path.is_file():
        raise MissingFileError(
            f"checkpoint {path} not found; set init_from=<pretrain run dir>/checkpoints/last.ckpt"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, pickle errors ... for a damaged file
        raise UserError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise UserError(
            f"{path} holds no state_dict: give a checkpoint written by vlmscale (or by python -m vlmscale.convert)"
        )
    state = upgrade_state_dict(checkpoint["state_dict"])
    loaded = []
    for part in PARTS:
        prefix = f"vlm.{part}."
        part_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if part_state:
            try:
                getattr(vlm, part).load_state_dict(part_state, strict=True)
            except RuntimeError as err:  # torch lists every missing, unexpected and mis-shaped tensor
                first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
                raise UserError(
                    f"{path} holds {part} weights of another model ({first[:300]}): the checkpoint comes from "
                    "another config; use the llm, vision, compressor, projector and visual_tokens of the run "
                    "that wrote it"
                ) from err
            loaded.append(part)
    if "connector" not in loaded:
        raise UserError(f"{path} holds no connector weights (keys starting with 'vlm.connector.')")
    return loaded


def reloadable_parts(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """Parts loaded by name again (``pretrained`` set): their frozen weights need not fill checkpoints."""
    return tuple(part for part in ("vision", "llm") if cfg[part].get("pretrained"))


def frozen_state_keys(vlm: Any, parts: Iterable[str], prefix: str = "vlm.") -> set[str]:
    """State-dict keys (under ``prefix``) of the frozen weights of ``parts``: what a checkpoint may leave out.

    From state_dict, not named_parameters: a tied lm_head shares the embedding tensor and is listed once by
    named_parameters, but stored under both names."""
    return {
        key
        for part in parts
        for key, value in getattr(vlm, part).state_dict(prefix=f"{prefix}{part}.", keep_vars=True).items()
        if not value.requires_grad
    }


def resume_checkpoint(cfg: Mapping[str, Any], run_dir: Path, expected_hash: str) -> tuple[str | None, int]:
    """The checkpoint to continue from and its step: resume=auto -> <run_dir>/checkpoints/last.ckpt (a file, or
    a stamped DeepSpeed folder; a corrupt file falls back to the kept previous one, see vlmscale/checkpoints.py),
    resume=never -> none, else the given path. A checkpoint stamped with another training hash is refused:
    continuing it would report an old model under the new config."""
    from vlmscale.checkpoints import read_stamps, resumable_checkpoint

    mode = cfg.get("resume", "auto")
    if mode in (None, "never", False):
        return None, 0
    if mode == "auto":
        path, stamps = resumable_checkpoint(Path(run_dir) / LAST_CKPT.parent)
        if path is None:
            return None, 0
    else:
        path = Path(str(mode))
        if not path.exists():
            raise MissingFileError(
                f"resume={mode}: no such checkpoint; use resume=auto, resume=never or a .ckpt path"
            )
        stamps = read_stamps(path)  # a file's, or a DeepSpeed folder's stamps file
    stamp = stamps.get("training_hash")
    if stamp is not None and stamp != expected_hash:
        raise UserError(
            f"{path} holds weights trained under another configuration (training hash {stamp}, this run's is "
            f"{expected_hash}): pass resume=never to start over in {run_dir}, or use another run folder"
        )
    return str(path), int(stamps.get("global_step", 0))
