"""End to end through Lightning: a run resumed from its checkpoint sees the same length-grouped batches."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import Dataset

from vlmscale.data.module import VLMDataModule

pytestmark = pytest.mark.filterwarnings(
    "ignore:You passed in a `val_dataloader`", "ignore:The dirpath has changed"
)


class Records(Dataset):
    """Items that are just their id; lengths() as LlavaDataset gives them."""

    def __init__(self, n: int = 300) -> None:
        generator = torch.Generator().manual_seed(0)
        self.words = (torch.rand(n, generator=generator) * 200).long().add(1).tolist()
        self.images = [i % 10 != 0 for i in range(n)]

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, index: int) -> int:
        return index

    def lengths(self):
        return self.words, self.images


class Recorder(L.LightningModule):
    """Records the ids of every micro-batch it trains on, keyed by (optimiser step, micro-batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, list[int]]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.global_step, batch.tolist()))
        return (self.weight * batch.float().mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit(tmp_path, max_steps: int, ckpt_path=None) -> list[tuple[int, list[int]]]:
    module = Recorder()
    data = VLMDataModule(
        {"train": Records()}, collate_fn=torch.tensor, batch_size=4, seed=5, group_by_length=True
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        accumulate_grad_batches=2,
        use_distributed_sampler=False,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=[
            L.pytorch.callbacks.ModelCheckpoint(dirpath=str(tmp_path), save_last=True, every_n_train_steps=3)
        ],
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return module.seen


def test_resumed_run_sees_the_batches_of_the_uninterrupted_one(tmp_path):
    whole = fit(tmp_path / "whole", max_steps=7)
    fit(tmp_path / "killed", max_steps=3)  # stops after step 3, last.ckpt written there
    resumed = fit(tmp_path / "resumed", max_steps=7, ckpt_path=str(tmp_path / "killed" / "last.ckpt"))
    assert [step for step, _ in whole] == [s for s in range(7) for _ in range(2)]  # 2 micro-batches a step
    assert resumed == whole[3 * 2 :]
    lengths = Records().words
    for _, ids in whole:  # grouped: every micro-batch spans a narrow band of lengths
        assert max(lengths[i] for i in ids) - min(lengths[i] for i in ids) < 40
