"""A run stopped three ways and resumed each time ends bitwise where an uninterrupted run ends (fast, in one
process; tests/faults/test_kill_resume.py does the same with real signals on separate processes).

The faults, one after another in one run folder: a real SIGTERM during step 3 (Lightning stops at the step
boundary, `last.ckpt` is saved there, off the every-2-steps cadence), a hard stop in the middle of step 6
(nothing saved: the step-4 checkpoint is the one to resume from, so steps 4 and 5 are trained twice) and a
hard stop while the step-6 checkpoint is being written. A hard stop is an exception no handler in vlmscale or
Lightning treats as an interrupt, so nothing after the fault point runs: the in-process stand-in for kill -9.

Dropout is switched on in the LLM: it draws from torch's global RNG, which makes the random stream part of
the state a resume must reproduce (the default tiny models have no dropout, so without it a resume that lost
the RNG state would still pass).
"""

import signal
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from resume_checks import assert_resumed_exactly

from vlmscale.checkpoints import read_stamps
from vlmscale.lit import VLMLightningModule
from vlmscale.train import run

REPO = Path(__file__).resolve().parents[2]
STEPS = 8
COMMON = [
    "llm=tiny-xs",
    "+llm.config.attention_dropout=0.1",
    "vision=tiny-clip-random",  # no tower pretraining run: this test is about the training state
    "visual_tokens=4",
    "loader.batch_size=4",
    "loader.eval_batch_size=8",
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=4",  # validation (with generation) between steps 4 and 5
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "checkpoint.every_n_train_steps=2",
    "eval_during_training.max_new_tokens=2",
    "eval.limit=8",
    "eval.progress=false",
    "data.progress=false",
    "threads=1",
]


class HardStop(BaseException):
    """Not an Exception, not a KeyboardInterrupt: train.py records no result and Lightning saves nothing."""


def hard_stop():
    raise HardStop("hard stop")


def train(run_dir, cache_dir):
    overrides = [*COMMON, f"paths.cache_dir={cache_dir}", f"run_dir={run_dir}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return run(compose("train", overrides=overrides))


def fault_in_step(monkeypatch, step: int, fault) -> None:
    """`fault()` runs as the training step that follows optimiser step `step` starts."""
    training_step = VLMLightningModule.training_step

    def faulty(self, batch, batch_idx):
        if self.trainer.global_step == step:
            fault()
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(VLMLightningModule, "training_step", faulty)


def fault_in_checkpoint_write(monkeypatch, step: int) -> None:
    """The checkpoint of `step` is half written to its temp file when the hard stop comes."""
    save = torch.save

    def faulty(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("global_step") == step and hasattr(f, "write"):
            f.write(b"PK half a checkpoint")
            hard_stop()
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", faulty)


def last_step(run_dir) -> int:
    return read_stamps(run_dir / "checkpoints" / "last.ckpt")["global_step"]


def test_resume_after_sigterm_hard_stop_and_a_cut_checkpoint_write_is_bitwise(tmp_path, cache_dir):
    reference = tmp_path / "reference"
    assert train(reference, cache_dir)["config"]["llm"]["config"]["attention_dropout"] == 0.1
    run_dir = tmp_path / "interrupted"

    with pytest.MonkeyPatch.context() as mp:
        fault_in_step(mp, 2, lambda: signal.raise_signal(signal.SIGTERM))
        with pytest.raises(SystemExit, match="^143$"):  # 128 + SIGTERM, as a shell reports it
            train(run_dir, cache_dir)
    assert last_step(run_dir) == 3  # step 3 ends, then it stops

    with pytest.MonkeyPatch.context() as mp:
        fault_in_step(mp, 5, hard_stop)
        with pytest.raises(HardStop, match="hard stop"):
            train(run_dir, cache_dir)
    assert last_step(run_dir) == 4 and not (run_dir / "result.json").exists()

    with pytest.MonkeyPatch.context() as mp:
        fault_in_checkpoint_write(mp, 6)
        with pytest.raises(HardStop, match="hard stop"):
            train(run_dir, cache_dir)
    assert last_step(run_dir) == 4, "the cut write leaves the step-4 checkpoint in place"

    train(run_dir, cache_dir)
    assert_resumed_exactly(run_dir, reference, STEPS)


def test_step_seeded_rng_draws_depend_on_the_step_alone():
    """The callback behind the dropout part above: the same (seed, step, micro-batch) gives the same draws,
    whatever the RNG held before; another step, micro-batch or seed gives others."""
    from types import SimpleNamespace

    from vlmscale.launch import StepSeededRNG

    def draws(seed, steps):
        callback, out = StepSeededRNG(seed), []
        for step in steps:  # a repeated step is the next micro-batch of that step (gradient accumulation)
            torch.rand(3)  # whatever ran before the batch (validation, a new loader iterator) drew something
            callback.on_train_batch_start(SimpleNamespace(global_step=step, global_rank=0), None, None, 0)
            out.append(torch.rand(4))
        return out

    first = draws(0, [5, 5, 6])
    assert all(torch.equal(a, b) for a, b in zip(first, draws(0, [5, 5, 6])))
    assert not torch.equal(first[0], first[1]), "each micro-batch of a step draws its own masks"
    assert not torch.equal(first[1], first[2]) and not torch.equal(first[0], draws(1, [5])[0])
    assert torch.equal(draws(0, [6])[0], first[2]), "a resumed run's first batch draws as the original did"
