"""Evaluate a trained checkpoint: ``python -m vlmscale.eval ckpt=PATH [tasks=[synthetic,gqa,pope]] [limit=N]``.

Composes ``conf/eval.yaml`` (the training groups + ``eval``). With ``use_run_config=true`` the model and
data config are read from the run's ``result.json`` (so a checkpoint is enough); predictions and scores go
to ``out_dir`` (default ``<run_dir>/eval``) and the ``error/*`` metrics are merged into the run's
``result.json`` when it exists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vlmscale.cli import hydra_command
from vlmscale.contract import to_plain
from vlmscale.errors import MissingFileError, UserError
from vlmscale.eval.runner import evaluate_from_config, update_result_json
from vlmscale.eval.tasks import benchmark, scorings_from_config

log = logging.getLogger("vlmscale.eval")

MODEL_KEYS = ("llm", "vision", "compressor", "projector", "visual_tokens", "data", "paths")


def run_dir_of(ckpt: Path, run_dir: str | None) -> Path:
    """``run_dir`` if set, else the run folder of ``<run_dir>/checkpoints/<name>.ckpt``, else the ckpt's folder."""
    if run_dir:
        return Path(run_dir)
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def effective_config(cfg: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """The plain config to build the model from: this config, with the model/data keys of the run's own
    config (``result.json``) when ``use_run_config`` and the run has one."""
    from vlmscale.results import read_result

    plain = dict(cfg)
    if not plain.get("use_run_config", True):
        return plain
    record = read_result(run_dir)
    run_cfg = (record or {}).get("config") or {}
    taken = [k for k in MODEL_KEYS if k in run_cfg]
    for key in taken:
        plain[key] = run_cfg[key]
    if taken:
        log.info("model/data config from %s/result.json: %s", run_dir, ", ".join(taken))
    return plain


def load_model(cfg: Mapping[str, Any], ckpt: Path, device: str = "cpu"):
    """Tokenizer and VLM built from ``cfg`` (as in training, `vlmscale.assemble`), the checkpoint's weights in."""
    from vlmscale.assemble import build_model

    tokenizer, vlm = build_model(cfg, weights=ckpt)
    return tokenizer, vlm.to(device).eval()


def run(cfg: Mapping[str, Any]) -> dict[str, float]:
    """Evaluate ``cfg['ckpt']``; returns the summary metrics. ``cfg`` is a resolved plain dict."""
    import torch

    if cfg.get("ckpt") in (None, "", "???"):
        raise MissingFileError(
            "no checkpoint given: python -m vlmscale.eval ckpt=<run dir>/checkpoints/last.ckpt (--help: examples)"
        )
    ckpt = Path(cfg["ckpt"])
    if not ckpt.is_file():
        raise MissingFileError(f"ckpt={ckpt}: no such checkpoint (e.g. <run dir>/checkpoints/last.ckpt)")
    run_dir = run_dir_of(ckpt, cfg.get("run_dir"))
    plain = effective_config(cfg, run_dir)
    if plain.get("threads"):
        torch.set_num_threads(int(plain["threads"]))
    device = plain.get("device") or "auto"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device}: no CUDA device on this machine; use device=cpu (or auto)")
    tasks = plain.get("tasks") or []
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    for name in names:
        benchmark(name)  # an unknown task name stops here, before the model is built
    torch.manual_seed(int(plain.get("seed", 0)))
    tokenizer, vlm = load_model(plain, ckpt, device)
    out_dir = Path(plain.get("out_dir") or run_dir / "eval")
    metrics = evaluate_from_config(plain, vlm, tokenizer, out_dir, names=names, limit=plain.get("limit"))
    if plain.get("update_result", True) and (run_dir / "result.json").exists():
        info = {"tasks": names, "limit": plain.get("limit"), "ckpt": str(ckpt), "out_dir": str(out_dir)}
        info["scoring"] = scorings_from_config(plain.get("eval") or {}, names)  # which rule gave each error
        update_result_json(run_dir, metrics, info)
        log.info("updated %s", run_dir / "result.json")
    for key, value in metrics.items():
        log.info("%s = %s", key, value)
    return metrics


@hydra_command("eval")
def main(cfg: DictConfig) -> dict[str, float]:
    resolved = to_plain(cfg)
    resolved.pop("hydra", None)
    return run(resolved)


if __name__ == "__main__":
    main()
