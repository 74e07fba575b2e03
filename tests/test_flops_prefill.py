"""The full count's LLM terms describe a prefill as it runs: layers on every token, the LM head once."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from vlmscale.flops import causal_attention_flops, llm_params, lm_head_flops
from vlmscale.models import build_llm

CONFIG = {
    "model_type": "qwen2",
    "vocab_size": 500,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def test_llm_prefill_flops_match_torch_counter():
    llm = build_llm("t", config=CONFIG, attn_implementation="eager")  # eager: the counter sees attention
    tokens = 24
    ids = torch.randint(0, 500, (1, tokens))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        llm(input_ids=ids, logits_to_keep=1)  # what generate's prefill runs
    counted = counter.get_total_flops()
    model = llm.model
    head = lm_head_flops(model)
    assert head == 2 * 500 * 64
    # Eager attention computes the full (unmasked) square: twice the causal half the count assumes.
    attention = 2 * causal_attention_flops(2, 64, tokens)
    # 2N counts every non-embedding parameter twice per token; the matmuls are the 2-d weights, the rest
    # (norm weights, q/k/v biases) are elementwise and the counter leaves them out.
    vectors = sum(p.numel() for p in model.model.parameters() if p.dim() == 1)
    layers = 2 * llm_params(model)["non_embedding"] * tokens
    assert counted == layers - 2 * vectors * tokens + head + attention
    assert vectors / llm_params(model)["non_embedding"] < 0.02  # what 2N over-counts is small
