"""vlmscale's Hydra plugins (Hydra only loads launchers and sweepers from the `hydra_plugins` namespace).

Kept import-light: Hydra imports every plugin module at start-up. The logic lives in `vlmscale.launch`
(preemption) and `vlmscale.sweep` (a sweep that never loses a point). Importing it registers vlmscale's
config resolvers (`vlmscale.resolvers`) before Hydra composes anything."""

from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

import vlmscale.resolvers  # noqa: F401  (registers ${vlmscale.auto:...} and friends)
from vlmscale.sweep import PointByPointSweep


class CheckpointingSlurmLauncher(SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher that saves the live run's `last.ckpt` before submitit
    requeues the job on its pre-timeout signal (see vlmscale/launch.py for who saves and who requeues)."""

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from vlmscale.launch import save_active_checkpoint

        save_active_checkpoint()
        return super().checkpoint(*args, **kwargs)


class PointByPointSweeper(PointByPointSweep, BasicSweeper):
    """Hydra's basic sweeper (same grid syntax) that checks run folders before launching and records every
    point that fails, even in Hydra's job set-up, instead of aborting the sweep (see vlmscale/sweep.py)."""
