"""VLMLightningModule's DeepSpeed hooks, checked on CPU: resuming from a checkpoint folder (DeepSpeed hands back
a client state without state_dict) and ZeRO-3 leaf marking of QueCC's attention. CUDA runs: test_cuda.py."""

import types

import pytest
import torch
from gpu_helpers import tiny_vlm

from vlmscale.lit import VLMLightningModule
from vlmscale.models.quecc import LocalCrossAttention


def lightning_module():
    vlm, _ = tiny_vlm()
    tokenizer = types.SimpleNamespace(eos_token_id=vlm.eos_token_id, chat_template=None)
    return VLMLightningModule(vlm, tokenizer, stage="finetune")


def test_a_deepspeed_client_state_leaves_the_weights_to_the_engine():
    lit = lightning_module()
    before = {k: v.clone() for k, v in lit.state_dict().items()}
    client_state = {"epoch": 0, "global_step": 4, "vlmscale_config_hash": "abc"}
    lit.on_load_checkpoint(client_state)
    assert "state_dict" not in client_state
    assert all(torch.equal(before[k], v) for k, v in lit.state_dict().items())


def test_a_lightning_checkpoint_is_completed_with_the_parts_it_left_out():
    lit = lightning_module()
    key = next(k for k in lit.state_dict() if k.startswith("vlm.connector."))
    checkpoint = {"state_dict": {key: torch.zeros_like(lit.state_dict()[key])}}
    lit.on_load_checkpoint(checkpoint)
    assert set(checkpoint["state_dict"]) == set(lit.state_dict())
    assert not checkpoint["state_dict"][key].any()


@pytest.mark.parametrize("stage3", [True, False])
def test_zero3_gathers_quecc_attention_as_one_leaf(stage3, monkeypatch):
    pytest.importorskip("deepspeed")
    lit = lightning_module()
    trainer = types.SimpleNamespace(strategy=types.SimpleNamespace(zero_stage_3=stage3))
    monkeypatch.setattr(VLMLightningModule, "trainer", property(lambda self: trainer))
    lit.configure_model()
    attention = [m for m in lit.vlm.modules() if isinstance(m, LocalCrossAttention)]
    assert attention and all(getattr(m, "_z3_leaf", False) == stage3 for m in attention)


def test_parameter_counts_survive_zero3_partitioning():
    from vlmscale.flops import llm_params

    vlm, _ = tiny_vlm()
    before = llm_params(vlm.llm.model)
    for p in vlm.llm.parameters():  # what ZeRO-3 leaves outside forward: empty data, the size in ds_numel
        p.ds_numel = p.numel()
        p.data = torch.empty(0)
    assert llm_params(vlm.llm.model) == before and before["total"] > before["non_embedding"] > 0


@pytest.mark.parametrize("partitioned", [True, False])
def test_each_stage_starts_with_a_partitioned_module_on_the_training_device(partitioned, monkeypatch):
    """The ZeRO-3 resume + eval fix: Lightning's teardown left the module on the CPU, and a DeepSpeed engine
    does not move a module ZeRO-3 already partitioned, so setup() moves it, buffers and parameter placeholders
    alike ('meta' stands in for the GPU here). An unpartitioned module is left to the strategy."""
    lit = lightning_module()
    for index, p in enumerate(lit.parameters()):
        if partitioned:
            p.ds_id = index  # what ZeRO-3 sets on every parameter it partitions
    buffers = dict(lit.named_buffers())
    assert any("position_ids" in name for name in buffers) and all(
        b.device.type == "cpu" for b in buffers.values()
    )
    trainer = types.SimpleNamespace(strategy=types.SimpleNamespace(root_device=torch.device("meta")))
    monkeypatch.setattr(VLMLightningModule, "trainer", property(lambda self: trainer))
    lit.setup("validate")
    expected = "meta" if partitioned else "cpu"
    assert {b.device.type for b in lit.buffers()} == {expected}
    assert {p.device.type for p in lit.parameters()} == {expected}
