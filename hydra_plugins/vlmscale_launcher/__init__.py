"""vlmscale's Hydra launcher plugin (Hydra only loads launchers from the `hydra_plugins` namespace).

Kept import-light: Hydra imports every plugin module at start-up. The logic lives in `vlmscale.launch`."""

from typing import Any

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


class CheckpointingSlurmLauncher(SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher that saves the live run's `last.ckpt` before submitit
    requeues the job on its pre-timeout signal (see vlmscale/launch.py for who saves and who requeues)."""

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from vlmscale.launch import save_active_checkpoint

        save_active_checkpoint()
        return super().checkpoint(*args, **kwargs)
