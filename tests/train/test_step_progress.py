"""A single run's bar counts optimiser steps of trainer.max_steps, shows the loss and an ETA, and starts a
resumed run where it is; never Lightning's `Epoch 0/-2` over an endless stream."""

import itertools

import lightning as L
import torch
from lightning.pytorch.demos.boring_classes import BoringModel
from torch.utils.data import DataLoader, IterableDataset

from vlmscale.step_progress import StepProgressBar


class Endless(IterableDataset):
    """A training stream without an end, as vlmscale's (one epoch indexed by step)."""

    def __iter__(self):
        return (torch.randn(32) for _ in itertools.count())


class LoggingModel(BoringModel):
    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        self.log("train/loss", out["loss"], prog_bar=True)
        return out

    def train_dataloader(self):
        return DataLoader(Endless(), batch_size=2)


def fit(tmp_path, max_steps, ckpt_path=None):
    bar = StepProgressBar()
    trainer = L.Trainer(
        max_steps=max_steps,
        accumulate_grad_batches=2,  # 2 batches per optimiser step: the bar counts steps
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        callbacks=[bar],
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(LoggingModel(), ckpt_path=ckpt_path)
    return trainer, bar


def test_the_bar_counts_optimiser_steps_with_loss_and_eta(tmp_path, capsys):
    trainer, bar = fit(tmp_path, max_steps=6)
    assert trainer.global_step == 6
    assert (bar.train_progress_bar.n, bar.train_progress_bar.total) == (6, 6)
    shown = capsys.readouterr().out.replace("\r", "\n")
    last = [line for line in shown.splitlines() if line.startswith("step ")][-1]
    assert last.startswith("step 6/6 |") and "ETA" in last and "loss " in last, last
    assert "Epoch" not in shown and "-2" not in shown


def test_a_resumed_run_starts_the_bar_at_its_step(tmp_path, capsys):
    trainer, _ = fit(tmp_path, max_steps=4)
    ckpt = tmp_path / "at4.ckpt"
    trainer.save_checkpoint(ckpt)
    capsys.readouterr()
    _, bar = fit(tmp_path, max_steps=8, ckpt_path=ckpt)
    assert bar.train_progress_bar.initial == 4  # the ETA is paced by this attempt's steps only
    steps = [
        line for line in capsys.readouterr().out.replace("\r", "\n").splitlines() if line.startswith("step ")
    ]
    assert steps[0].startswith("step 4/8") and steps[-1].startswith("step 8/8"), steps
