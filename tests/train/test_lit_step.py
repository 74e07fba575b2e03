"""The training step: no host-device sync per step (a nan/inf loss is still caught), the AdamW kernel, compile."""

from __future__ import annotations

import types

import pytest
import torch

from benchmarks.gpu_check import build_model, random_batches, shape
from vlmscale.lit import VLMLightningModule

SIZES = shape(tiny=True)


def tiny_module(compile: bool = False, **optim) -> VLMLightningModule:
    vlm = build_model(SIZES, SIZES["visual_tokens"], "float32")
    tokenizer = types.SimpleNamespace(eos_token_id=vlm.eos_token_id, chat_template=None, decode=None)
    optim = {"lr": 1e-3, "warmup_ratio": 0.0, **optim}
    return VLMLightningModule(vlm, tokenizer, stage="finetune", optim=optim, compile=compile)


def fixed_batches(vlm, count: int = 2, size: int = 4) -> list[dict]:
    samples = random_batches(vlm, SIZES, count * size)
    return [
        {k: torch.stack([s[k] for s in samples[i : i + size]]) for k in samples[0]}
        for i in range(0, count * size, size)
    ]


class Steps(VLMLightningModule):
    """The module with a step counter of its own and the loss it is handed (no model run, no Trainer)."""

    step = 0
    loss: torch.Tensor

    @property
    def global_step(self) -> int:
        return self.step

    def _forward(self, batch):
        return types.SimpleNamespace(loss=self.loss)

    def log(self, *args, **kwargs):
        pass


def steps_module() -> Steps:
    vlm = build_model(SIZES, SIZES["visual_tokens"], "float32")
    tokenizer = types.SimpleNamespace(eos_token_id=vlm.eos_token_id, chat_template=None)
    module = Steps(vlm, tokenizer, stage="finetune")
    module.trainer = types.SimpleNamespace(log_every_n_steps=5, accumulate_grad_batches=2)
    return module


def test_training_step_never_reads_the_loss_back():
    """On the meta device a tensor has no values: any host read (bool, item, tolist) would raise."""
    module = steps_module()
    module.loss = torch.tensor(1.0, device="meta")
    batch = {"input_ids": torch.zeros(2, 3, dtype=torch.long)}
    for module.step in range(20):
        module.training_step(batch, module.step)
    with pytest.raises(NotImplementedError):  # ...only the periodic check reads it
        module.check_finite()


def test_a_nonfinite_loss_stops_training_at_the_next_check_naming_its_step():
    module = steps_module()
    batch = {"input_ids": torch.zeros(2, 3, dtype=torch.long)}
    checks = 0
    for module.step, value in enumerate([2.0, 1.5, float("nan"), 1.0, float("inf")]):
        module.loss = torch.tensor(value)
        module.training_step(batch, module.step)
        for micro_batch in range(2):  # accumulate_grad_batches=2: the hook runs per micro-batch
            try:
                module.on_train_batch_end(None, batch, 2 * module.step + micro_batch)
            except FloatingPointError as error:
                checks += 1
                message = str(error)
    # every log_every_n_steps (5) optimiser steps = 10 micro-batches: the check ran once, at the end
    assert checks == 1 and "became nan at step 2 (noticed at step 4)" in message
    with pytest.raises(FloatingPointError, match="nan at step 2"):
        module.on_save_checkpoint({"state_dict": {}})  # a checkpoint is never written after it


def test_adamw_is_fused_on_cuda_and_foreach_elsewhere():
    optimizer, _ = tiny_module().make_optimizer(10)
    assert optimizer.defaults["foreach"] and not optimizer.defaults["fused"]  # CPU parameters
    fused, _ = tiny_module(fused=True).make_optimizer(10)
    assert fused.defaults["fused"]
    if torch.cuda.is_available():
        module = tiny_module().cuda()
        assert module.make_optimizer(10)[0].defaults["fused"]


def train(module, batches, steps: int = 20) -> list[float]:
    optimizer, scheduler = module.make_optimizer(steps)
    module.train()
    losses = []
    for step in range(steps):
        loss = module._forward(batches[step % len(batches)]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return losses


@pytest.mark.slow  # inductor compiles C++ kernels on the CPU: about a minute
def test_compiled_llm_and_connector_train_to_the_eager_loss(monkeypatch):
    torch.manual_seed(0)
    eager = tiny_module()
    batches = fixed_batches(eager.vlm)
    torch.manual_seed(0)
    compiled = tiny_module(compile=True)
    assert compiled.vlm.connector._compiled_call_impl is not None
    assert all(layer._compiled_call_impl is not None for layer in compiled.vlm.llm.decoder.layers)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints unchanged

    want, got = train(eager, batches), train(compiled, batches)
    assert want[-1] < want[0]  # it learns
    assert max(abs(a - b) for a, b in zip(want, got)) < 1e-4

    # validation generation runs (eager inside a compiled module) and agrees
    monkeypatch.setattr("vlmscale.lit.decode", lambda tokens, tokenizer, stop: tokens.tolist())
    prompts = {
        **batches[0],
        "prompt_ids": batches[0]["input_ids"][:, :12],
        "prompt_attention_mask": batches[0]["attention_mask"][:, :12],
    }
    eager.eval(), compiled.eval()
    assert compiled.generate_answers(prompts) == eager.generate_answers(prompts)
