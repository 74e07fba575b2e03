"""Preemption and requeue: who saves, who requeues.

One mechanism each, so they never fight:
- **Requeue is submitit's.** Sweeps reach SLURM through hydra-submitit-launcher; submitit catches the
  pre-timeout signal (USR2, `signal_delay_s` before the limit), pickles the job again and `scontrol requeue`s it.
  Lightning's own SLURM auto-requeue is switched off (`SLURMEnvironment(auto_requeue=False)`).
- **Saving is ours.** `CheckpointingSlurmLauncher.checkpoint` (hydra_plugins/vlmscale_launcher; submitit calls
  it on that signal) first has the running trainer write `last.ckpt`. A SIGTERM (preemption, `scontrol requeue`, `kill` on a laptop) is turned by
  Lightning into a clean stop at the next step boundary, where `SaveOnInterrupt` writes `last.ckpt`.
- **Resuming is the run's.** A requeued job runs the same grid point in the same folder (folders are named
  from the grid point), and `resume=auto` picks up `last.ckpt`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L

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
