"""Train one VLM from a Hydra config and write its `result.json`.

    python -m vlmscale.train                                   # tiny VLM + QueCC on the embedded synthetic suite
    python -m vlmscale.train llm=tiny-m visual_tokens=16       # the two sweep axes
    python -m vlmscale.train +sweep=tiny                       # a whole grid (multirun), see conf/sweep/

The recipe: compose config -> validate it (every problem in one message) -> seed and threads -> tokenizer,
model, data -> Lightning Trainer -> fit -> test -> result.json (atomically, also when the run fails, whatever
fails). A run folder that already holds a `done` result for the same result hash is skipped; an interrupted
one resumes from `checkpoints/last.ckpt` (resume=auto) when its training hash matches, and a checkpoint that
finished training is evaluated again without retraining when only evaluation settings changed.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import vlmscale.resolvers  # noqa: F401  (the ${vlmscale.auto:...} keys resolve in the job's process too)
from vlmscale.assemble import check_config, resume_checkpoint
from vlmscale.cli import hydra_command, in_multirun
from vlmscale.contract import to_plain
from vlmscale.errors import UserError
from vlmscale.results import (
    failure_record,
    git_sha,
    is_done,
    read_result,
    result_hash,
    training_hash,
    write_result,
)
from vlmscale.validate import validate_config

log = logging.getLogger("vlmscale.train")


def quiet_expected_warnings() -> None:
    """Expected, so not worth lines on every run: srun on PATH outside a job (a login node, or this machine
    with scripts/slurm-local.sh), the frozen vision tower in eval mode while the rest trains, and a Lightning
    internal deprecation. Set per run: launcher worker processes reset the filters a module set at import."""
    warnings.filterwarnings("ignore", message="The `srun` command is available")
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def set_threads(threads: int | str | None) -> int:
    """Pin torch's intra-op threads: `threads` from config, else SLURM_CPUS_PER_TASK, else torch's default.
    Two processes with two threads each on two cores run many times slower than one thread each."""
    import torch

    if threads in (None, "auto", ""):
        threads = os.environ.get("SLURM_CPUS_PER_TASK")
    if threads not in (None, "auto", ""):
        n = int(threads)
        if n < 1:
            raise ValueError(f"threads={threads} must be >= 1 (or null for the machine default)")
        torch.set_num_threads(n)
        os.environ["OMP_NUM_THREADS"] = str(n)
    return torch.get_num_threads()


def resolve_run_dir(cfg: DictConfig) -> Path:
    if cfg.get("run_dir"):
        return Path(cfg.run_dir)
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def _int_or_as_given(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value  # a bad value is recorded as given; validation names it


def point_fields(cfg: DictConfig) -> dict[str, Any]:
    """The grid point's fields of result.json, read without failing (a failed record needs them too)."""

    def get(key: str) -> Any:
        try:
            return OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        except Exception:
            return None

    return {
        "llm": get("llm.name"),
        "visual_tokens": _int_or_as_given(get("visual_tokens")),
        "compressor": get("compressor.name"),
        "projector": get("projector.name"),
        "stage": get("stage"),
        "seed": _int_or_as_given(get("seed")),
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    """Validate, train, evaluate and record one grid point. Returns the result record. Whatever fails after
    the run folder is known (a bad value, a missing file, training, evaluation) ends in a failed result.json."""
    started = time.time()
    run_dir = resolve_run_dir(cfg)
    base = {**point_fields(cfg), "git_sha": git_sha(), "run_dir": str(run_dir)}
    resolved: dict[str, Any] | None = None
    try:
        resolved = to_plain(cfg)
        resolved.pop("hydra", None)
        base.update(config_hash=result_hash(resolved), training_hash=training_hash(resolved))
        check_config(resolved)  # old spellings (projector=quecc) first: they would confuse the checks below
        validate_config(resolved)
        run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.get("skip_done", True) and is_done(run_dir, base["config_hash"]):
            log.info("skipping %s: result.json is done for config %s", run_dir, base["config_hash"])
            return read_result(run_dir)
        outcome = train_and_evaluate(cfg, run_dir, resolved, base["training_hash"])
        if outcome is None:  # rank > 0 of a multi-process run: rank 0 writes the one result.json
            return base
        record = {"status": "done", "error": None, **base, **outcome}
        failure = None
    except Exception as error:  # SystemExit (preemption, SIGTERM) is not a failure: it resumes later.
        if isinstance(error, UserError):  # the message says it all; a traceback would bury it
            if in_multirun():  # a single run's command prints it (vlmscale.cli)
                log.error("run %s failed: %s", run_dir, error)
        else:
            log.exception("run %s failed", run_dir)
        record = {"status": "failed", "error": failure_record(error), **base, "logs": log_files(run_dir)}
        failure = error
    record.update({"wall_time_s": time.time() - started, "config": resolved})
    if failure is not None:
        keep_done_result(run_dir)
    write_result(run_dir, record)
    if failure is not None and not in_multirun():  # in a sweep, one failed point must not stop the rest
        raise failure  # the command reports it (a user error: one message, vlmscale/cli.py)
    log.info("result (%s): %s", record["status"], run_dir / "result.json")
    return read_result(run_dir)  # what is on disk (NaN metrics become null), not what was in memory


def keep_done_result(run_dir: Path) -> None:
    """A failed attempt under a new config (say a missing eval benchmark) must not erase the folder's `done`
    result of the old one: it moves to result-previous.json, out of the sweep table, still on disk."""
    try:
        previous = read_result(run_dir)
    except ValueError:
        return
    if previous and previous.get("status") == "done":
        os.replace(run_dir / "result.json", run_dir / "result-previous.json")
        log.warning("kept the earlier done result as %s", run_dir / "result-previous.json")


def log_files(run_dir: Path) -> dict[str, Any]:
    """Where the run's training curves are, relative to the run folder: one CSV per attempt (a resumed run
    adds a folder, it never overwrites one), and the W&B run id that every attempt logs to."""
    logs: dict[str, Any] = {
        "csv": sorted(str(p.relative_to(run_dir)) for p in run_dir.glob("logs/*/metrics.csv"))
    }
    if (run_dir / "wandb").is_dir():
        from vlmscale.build import wandb_run_id

        logs["wandb"] = {"id": wandb_run_id(run_dir), "dir": "wandb"}
    return logs


def train_and_evaluate(
    cfg: DictConfig, run_dir: Path, resolved: dict[str, Any], train_hash: str
) -> dict[str, Any] | None:
    """Train (or resume), validate, evaluate: the outcome fields of result.json; None in the processes other
    than rank 0 of a multi-process run (rank 0 writes the result)."""
    import lightning as L
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from vlmscale.build import build_datamodule, build_module, build_trainer, prompt_token_counts
    from vlmscale.eval.runner import evaluate_from_config
    from vlmscale.launch import register_active_run

    quiet_expected_warnings()
    threads = set_threads(cfg.get("threads"))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    module, tokenizer = build_module(cfg, config_hash=train_hash)
    datamodule = build_datamodule(cfg, tokenizer, module.vlm)
    trainer = build_trainer(cfg, run_dir)
    register_active_run(trainer, run_dir / "checkpoints" / "last.ckpt")  # for a save on preemption
    log.info("run %s: llm=%s T=%s threads=%d", run_dir, cfg.llm.name, cfg.visual_tokens, threads)

    max_steps = int(cfg.trainer.max_steps)
    ckpt_path, step = resume_checkpoint(cfg, run_dir, train_hash)
    if ckpt_path and step >= max_steps:
        log.info("training is complete in %s (step %d): evaluating it again, no retraining", ckpt_path, step)
    elif ckpt_path:
        log.info("resuming from %s (step %d)", ckpt_path, step)
    fit_started = time.time()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:
        # last.ckpt was saved at the step boundary (launch.SaveOnInterrupt); no result is written, so the
        # same command (or SLURM's requeue) resumes. 128 + SIGTERM, as a shell reports a killed process.
        log.warning(
            "stopped by SIGTERM at step %d; run the same command again to resume", trainer.global_step
        )
        raise SystemExit(143) from None
    # This attempt's fit: its time and its steps (python -m vlmscale.plan compares its estimate with them).
    fit = {"train_seconds": time.time() - fit_started, "train_steps": int(trainer.global_step) - step}
    if trainer.interrupted:
        raise RuntimeError("training was interrupted before it finished")
    if trainer.global_step < max_steps:
        raise RuntimeError(
            f"training stopped at step {trainer.global_step} of trainer.max_steps={max_steps} (a trainer "
            "limit such as max_epochs or max_time ended it): the model is not the one this config describes"
        )
    # ModelCheckpoint saves every n steps; make last.ckpt the model this result describes (init_from, eval).
    trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    if module.last_validated_step != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    rank, world = trainer.global_rank, trainer.world_size
    log.info(  # one line per process: a multi-process run's ranks must agree on it
        "rank %d of %d: step %d, training hash %s, val/loss %.6f",
        rank,
        world,
        trainer.global_step,
        train_hash,
        metrics.get("val/loss", float("nan")),
    )

    # Final scores: the eval tasks (default: the synthetic suite's test split), predictions kept on disk.
    # Lightning's teardown left the model on the CPU (under ZeRO-3 only its placeholders and buffers: the
    # shards stay on the GPU); evaluate where training ran. One process evaluates and writes result.json; under
    # ZeRO-3 every rank runs the same forwards (the weights are gathered collectively), the others into scratch.
    zero3 = any(hasattr(p, "ds_id") for p in module.parameters())
    if rank != 0 and not zero3:
        return None
    module.vlm.to(trainer.strategy.root_device)
    # The test split's cached tower output, when the run reads features (vlmscale.features)
    cached = getattr(datamodule.datasets.get("test"), "image_features", None)
    with tempfile.TemporaryDirectory(prefix="vlmscale-eval-rank") as scratch:
        out_dir = run_dir / "eval" if rank == 0 else Path(scratch)
        metrics.update(evaluate_from_config(resolved, module.vlm, tokenizer, out_dir, image_features=cached))
    if rank != 0:
        return None
    text_tokens, query_tokens = prompt_token_counts(
        datamodule.datasets.get("test") or datamodule.datasets["val"]
    )
    accounting = module.vlm.accounting(text_tokens, query_tokens=query_tokens)
    return {
        **accounting,
        "metrics": metrics,
        "steps": int(trainer.global_step),
        **fit,
        "logs": log_files(run_dir),
    }


@hydra_command("train")
def main(cfg: DictConfig) -> dict[str, Any]:
    return run(cfg)


if __name__ == "__main__":
    main()
