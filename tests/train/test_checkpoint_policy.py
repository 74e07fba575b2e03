"""Checkpoints at the real models' sizes: keeping the previous last.ckpt is a setting (auto: by the file's size),
and a DeepSpeed checkpoint folder carries the training hash and is refused under another config, like a file."""

import json
import logging

import pytest
import torch

from vlmscale import checkpoints
from vlmscale.assemble import resume_checkpoint
from vlmscale.checkpoints import (
    LAST,
    PREVIOUS,
    STAMPS_FILE,
    TRAINING_HASH_KEY,
    AtomicCheckpointIO,
    StampedDeepSpeedStrategy,
    keep_previous_flag,
    read_stamps,
    resumable_checkpoint,
)


def save(folder, step, keep="auto", numel=4):
    AtomicCheckpointIO(keep_previous=keep).save_checkpoint(
        {"global_step": step, TRAINING_HASH_KEY: "abc", "state_dict": {"w": torch.zeros(numel)}},
        folder / LAST,
    )


@pytest.mark.parametrize("keep", [True, "auto"])
def test_a_small_checkpoint_keeps_the_one_before(tmp_path, keep):
    save(tmp_path, 10, keep)
    save(tmp_path, 20, keep)
    assert read_stamps(tmp_path / PREVIOUS)["global_step"] == 10
    assert read_stamps(tmp_path / LAST)["global_step"] == 20


def test_keep_previous_false_writes_one_copy_and_drops_a_stale_one(tmp_path):
    save(tmp_path, 10, True)
    save(tmp_path, 20, True)  # a previous copy from when the setting was on
    save(tmp_path, 30, False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST]
    assert read_stamps(tmp_path / LAST)["global_step"] == 30


def test_auto_drops_the_previous_copy_above_the_size_limit(tmp_path, monkeypatch):
    # With the limit at 2000 bytes a 4-float checkpoint (about 1.2 KB with torch.save's framing) is below it,
    # a 1000-float one (4 KB of data) above it.
    monkeypatch.setattr(checkpoints, "KEEP_PREVIOUS_AUTO_MAX_BYTES", 2000)
    save(tmp_path, 10, numel=4)
    save(tmp_path, 20, numel=4)
    assert (tmp_path / PREVIOUS).is_file()
    save(tmp_path, 30, numel=1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST]


def test_the_auto_limit_sits_between_a_0_5b_and_a_1_8b_ddp_finetune():
    # A DDP checkpoint holds fp32 weights (4 B) and Adam's m and v (8 B) per trained parameter.
    per_param = 4 + 8
    assert 0.46e9 * per_param < checkpoints.KEEP_PREVIOUS_AUTO_MAX_BYTES < 1.84e9 * per_param


def test_keep_previous_setting_is_checked():
    assert keep_previous_flag(None) == "auto" and keep_previous_flag(False) is False
    with pytest.raises(ValueError, match="checkpoint.keep_previous='yes'"):
        keep_previous_flag("yes")


def deepspeed_folder(run_dir, training_hash, step):
    """A DeepSpeed checkpoint folder as StampedDeepSpeedStrategy leaves it (DeepSpeed's own files as stubs)."""
    folder = run_dir / "checkpoints" / LAST
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "latest").write_text("checkpoint")
    checkpoints.write_folder_stamps(folder, {TRAINING_HASH_KEY: training_hash, "global_step": step})
    return folder


def test_a_stamped_folder_resumes_under_its_own_hash_and_is_refused_under_another(tmp_path):
    folder = deepspeed_folder(tmp_path, "h1", 40)
    assert resumable_checkpoint(tmp_path / "checkpoints") == (
        folder,
        {"training_hash": "h1", "global_step": 40},
    )
    assert resume_checkpoint({"resume": "auto"}, tmp_path, "h1") == (str(folder), 40)
    # the same refusal (and fix) as a single file's
    with pytest.raises(ValueError, match="training hash h1, this run's is h2.*resume=never"):
        resume_checkpoint({"resume": "auto"}, tmp_path, "h2")
    with pytest.raises(ValueError, match="training hash h1, this run's is h2"):
        resume_checkpoint({"resume": str(folder)}, tmp_path, "h2")


def test_an_unstamped_folder_resumes_unchecked_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "checkpoints" / LAST
    (folder / "checkpoint").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="vlmscale.checkpoints"):
        assert resume_checkpoint({"resume": "auto"}, tmp_path, "h2") == (str(folder), 0)
    assert STAMPS_FILE in caplog.text


def test_a_damaged_stamps_file_is_named(tmp_path):
    folder = deepspeed_folder(tmp_path, "h1", 40)
    (folder / STAMPS_FILE).write_text("{half")
    with pytest.raises(checkpoints.CorruptCheckpointError, match=STAMPS_FILE):
        resume_checkpoint({"resume": "auto"}, tmp_path, "h1")


def test_the_deepspeed_strategy_stamps_the_folder_it_saved(tmp_path, monkeypatch):
    pytest.importorskip("deepspeed")
    from lightning.pytorch.strategies import DeepSpeedStrategy

    written = []

    def deepspeed_save(self, checkpoint, filepath, storage_options=None):  # stands in for the engine's save
        (filepath / "checkpoint").mkdir(parents=True)
        written.append(sorted(checkpoint))

    monkeypatch.setattr(DeepSpeedStrategy, "save_checkpoint", deepspeed_save)
    strategy = StampedDeepSpeedStrategy(stage=3)
    folder = tmp_path / LAST
    strategy.save_checkpoint({"global_step": 7, TRAINING_HASH_KEY: "h9", "state_dict": {}}, folder)
    assert written and json.loads((folder / STAMPS_FILE).read_text()) == {
        "training_hash": "h9",
        "global_step": 7,
    }
    assert read_stamps(folder) == {"training_hash": "h9", "global_step": 7}
