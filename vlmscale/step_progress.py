"""A single run's progress bar in optimiser steps: `step 120/240 |#####   | 00:41 elapsed, ETA 00:42, loss 1.234`.

Lightning's own bars count the batches of an epoch, and the training stream here is endless (one epoch indexed
by step, vlmscale/data/module.py), so they read `Epoch 0/-2 3/3`. A run is `trainer.max_steps` optimiser
steps: this bar counts those (gradient accumulation included), from the step a resumed run starts at, so the
rate and the ETA are this attempt's own. Validation keeps Lightning's bar.
"""

from __future__ import annotations

import sys
from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

STEP_FORMAT = "step {n_fmt}/{total_fmt} |{bar:24}| {elapsed} elapsed, ETA {remaining}{postfix}"
SHOWN = {"train/loss": "loss", "val/loss": "val loss", "val/error/avg": "val error"}  # metric: its name here


class StepProgressBar(TQDMProgressBar):
    def init_train_tqdm(self) -> Tqdm:
        """Lightning's training bar, counting steps from where this attempt starts (tqdm's rate, and so the
        ETA, count from `initial`)."""
        return Tqdm(
            total=self.trainer.max_steps,
            initial=self.trainer.global_step,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=STEP_FORMAT,
        )

    def on_train_epoch_start(self, trainer: Any, *_: Any) -> None:
        pass  # one endless epoch: the bar made at the start of training is the one (no `Epoch 0/-2`)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *_: Any) -> None:
        bar = self.train_progress_bar
        if bar is not None and not bar.disable and self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            self._show_metrics(trainer, pl_module)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_validation_end(trainer, pl_module)  # it puts every metric on the step bar: ours instead
        if self._train_progress_bar is not None:
            self._show_metrics(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._show_metrics(trainer, pl_module)
        if self._leave:
            self.train_progress_bar.close()

    def _show_metrics(self, trainer: Any, pl_module: Any) -> None:
        bar = self.train_progress_bar
        if bar.disable:
            return
        metrics = self.get_metrics(trainer, pl_module)
        shown = [(name, metrics[key]) for key, name in SHOWN.items() if key in metrics]
        bar.set_postfix_str(", ".join(f"{name} {float(value):.3f}" for name, value in shown), refresh=True)
