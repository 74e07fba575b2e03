"""Preemption and requeue: who saves, who requeues.

One mechanism each, so they never fight:
- **Requeue is submitit's.** Sweeps reach SLURM through hydra-submitit-launcher; submitit catches the
  pre-timeout signal (USR2, `signal_delay_s` before the limit), pickles the job again and `scontrol requeue`s it.
  Lightning's own SLURM auto-requeue is switched off (`SLURMEnvironment(auto_requeue=False)`).
- **Saving is ours.** `CheckpointingSlurmLauncher.checkpoint` (hydra_plugins/vlmscale_launcher; submitit calls
  it on that signal) first has the running trainer write `last.ckpt`. A SIGTERM (preemption, `scontrol requeue`, `kill` on a laptop) is turned by
  Lightning into a clean stop at the next step boundary, where `SaveOnInterrupt` writes `last.ckpt`.
- **Resuming is the run's.** A requeued job runs the same grid point in the same folder (folders are named
  from the grid point), and `resume=auto` picks up `last.ckpt`. What a step sees is a function of the step:
  its batch (`data.module.StepIndexedSampler`) and its random draws (`StepSeededRNG`), so a resumed run
  trains bitwise as an uninterrupted one would (tests/faults/test_exact_resume.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

log = logging.getLogger("vlmscale.launch")

_active: dict[str, Any] = {}


def register_active_run(trainer: L.Trainer, last_ckpt: Path) -> None:
    _active["trainer"], _active["path"] = trainer, Path(last_ckpt)


def save_active_checkpoint() -> Path | None:
    """Write `last.ckpt` for the run in progress in this process, if any (used on preemption)."""
    trainer, path = _active.get("trainer"), _active.get("path")
    if trainer is None or trainer.lightning_module is None or trainer.global_step == 0:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)
    log.warning("preemption: saved %s at step %d", path, trainer.global_step)
    return path


class SaveOnInterrupt(L.Callback):
    """On SIGTERM Lightning stops at a step boundary and raises; save there so the rerun resumes exactly."""

    def __init__(self, last_ckpt: str | Path) -> None:
        self.last_ckpt = Path(last_ckpt)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit" and trainer.global_step > 0:
            self.last_ckpt.parent.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(self.last_ckpt)
            log.warning(
                "SIGTERM: saved %s at step %d; rerun the same command to resume",
                self.last_ckpt,
                trainer.global_step,
            )


class StepSeededRNG(L.Callback):
    """Seeds torch's global RNG before every training batch from (seed, rank, optimiser step, micro-batch).

    Dropout (an LLM config may turn it on: `llm.config.attention_dropout`) draws from that RNG, whose state no
    checkpoint holds, and validation and each new DataLoader iterator draw from it too; so without this a run
    resumed from step s draws other dropout masks than the uninterrupted run did at step s. Seeded from the
    step, the draws are the same however often the run was stopped, like the batches of the sampler."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._micro = (-1, 0)  # (optimiser step, micro-batch index within it) of the last batch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        self._micro = (step, self._micro[1] + 1 if self._micro[0] == step else 0)
        entropy = [self.seed, trainer.global_rank, step, self._micro[1]]
        torch.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]))
