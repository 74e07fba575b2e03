"""Checkpoint files under damage: the previous one is kept, a corrupt one is set aside or named with the fix."""

import os

import pytest
import torch

from vlmscale.checkpoints import (
    LAST,
    PREVIOUS,
    TRAINING_HASH_KEY,
    AtomicCheckpointIO,
    CorruptCheckpointError,
    read_stamps,
    resumable_checkpoint,
)


def save(folder, step):
    AtomicCheckpointIO().save_checkpoint(
        {"global_step": step, TRAINING_HASH_KEY: "abc", "state_dict": {"w": torch.full((4,), float(step))}},
        folder / LAST,
    )


def corrupt(path):
    path.write_bytes(os.urandom(64))


def test_each_save_keeps_the_one_before(tmp_path):
    save(tmp_path, 10)
    assert not (tmp_path / PREVIOUS).exists()
    save(tmp_path, 20)
    assert read_stamps(tmp_path / LAST)["global_step"] == 20
    assert read_stamps(tmp_path / PREVIOUS) == {"training_hash": "abc", "global_step": 10}


def test_a_write_cut_short_leaves_the_old_checkpoint_whole(tmp_path, monkeypatch):
    save(tmp_path, 10)

    def dies_mid_write(obj, fh):
        fh.write(b"PK half a checkpoint")
        raise KeyboardInterrupt("killed mid-write")  # stands in for the kill

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt, match="killed mid-write"):
        save(tmp_path, 20)
    assert read_stamps(tmp_path / LAST)["global_step"] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST]


def test_temp_files_of_a_killed_writer_are_cleared(tmp_path):
    (tmp_path / f".{LAST}.abc.tmp").write_bytes(b"half")
    save(tmp_path, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST]


def test_no_checkpoint(tmp_path):
    assert resumable_checkpoint(tmp_path) == (None, {})


def test_good_last_is_used(tmp_path):
    save(tmp_path, 10)
    save(tmp_path, 20)
    path, stamps = resumable_checkpoint(tmp_path)
    assert path == tmp_path / LAST and stamps["global_step"] == 20


def test_corrupt_last_falls_back_to_the_previous_and_is_set_aside(tmp_path, caplog):
    save(tmp_path, 10)
    save(tmp_path, 20)
    corrupt(tmp_path / LAST)
    path, stamps = resumable_checkpoint(tmp_path)
    assert path == tmp_path / PREVIOUS and stamps["global_step"] == 10
    assert (tmp_path / (LAST + ".corrupt")).exists() and not (tmp_path / LAST).exists()
    assert "resuming from the previous checkpoint" in caplog.text


def test_missing_last_after_a_kill_between_the_two_moves(tmp_path):
    save(tmp_path, 10)
    save(tmp_path, 20)
    (tmp_path / LAST).unlink()
    assert resumable_checkpoint(tmp_path)[0] == tmp_path / PREVIOUS


@pytest.mark.parametrize("keep_previous_corrupt", [False, True])
def test_corrupt_without_a_good_previous_names_the_fix(tmp_path, keep_previous_corrupt):
    save(tmp_path, 10)
    if keep_previous_corrupt:
        save(tmp_path, 20)
        corrupt(tmp_path / PREVIOUS)
    corrupt(tmp_path / LAST)
    with pytest.raises(CorruptCheckpointError, match="is not a readable checkpoint") as info:
        resumable_checkpoint(tmp_path)
    message = str(info.value)
    assert f"{tmp_path / LAST} is not a readable checkpoint" in message
    assert f"delete {tmp_path / LAST}" in message and "resume=never" in message
    assert (tmp_path / LAST).exists(), "nothing is moved when there is nothing to fall back to"


def test_truncated_checkpoint_is_corrupt(tmp_path):
    save(tmp_path, 10)
    data = (tmp_path / LAST).read_bytes()
    (tmp_path / LAST).write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match="resume=never"):
        resumable_checkpoint(tmp_path)
