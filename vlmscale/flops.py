"""Parameter counts and inference FLOPs.

The paper's measure (arXiv 2411.03312) is ``2 * N * (Q + T)``: N the LLM's parameters, Q text tokens, T visual
tokens. It leaves out the vision tower, the connector (compressor + projector) and, for QueCC, the extra LLM pass over the
question; :func:`vlm_accounting` reports those too so users can see what the paper's measure omits. With the
compressor's ``query: prefix`` the question is read from the prompt's own prefix, so that pass costs 0.

The full count describes a prefill as it runs (``benchmarks/prefill.py`` times it): every prompt token goes
through the layers (2 x non-embedding parameters each; an embedding lookup is no matmul), and the LM head
runs once, for the first answer token. 2N(Q+T) instead charges the vocabulary projection to every token,
a third of the FLOPs for Qwen1.5-0.5B, whose embeddings are a third of its parameters.
All module counts are matmul/conv FLOPs (2 per multiply-add); norms and activations are not counted.

Training: :func:`training_flops` counts one sample's model FLOPs as the GPU check's MFU does (forward 1, backward
2 for a trained LLM, 1 for a frozen one, which still passes gradients to the connector; the frozen tower and the
no-grad question pass forward only). At a fixed MFU a step's time is proportional to it: that is how
``python -m vlmscale.plan`` carries a measured step time to other sizes N and token counts T.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the training-cost functions below serve torch-free callers too
    from torch import nn


def numel(param) -> int:
    """Elements of a parameter; under DeepSpeed ZeRO-3 a parameter outside forward is an empty partition and
    ``ds_numel`` holds its full size."""
    return int(getattr(param, "ds_numel", param.numel()))


def llm_params(model: nn.Module) -> dict[str, int]:
    """Total parameters (tied weights once) and non-embedding ones (minus input and untied output embeddings)."""
    total = sum(numel(p) for p in model.parameters())
    embedding_ids: set[int] = set()
    embedding = 0
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        weight = getattr(module, "weight", None)
        if weight is not None and id(weight) not in embedding_ids:
            embedding_ids.add(id(weight))
            embedding += numel(weight)
    return {"total": int(total), "non_embedding": int(total - embedding)}


def inference_flops(n_params: float, text_tokens: float, visual_tokens: float) -> float:
    """The paper's inference cost: 2 * N * (Q + T)."""
    return 2.0 * float(n_params) * (float(text_tokens) + float(visual_tokens))


def causal_attention_flops(num_layers: int, attn_width: int, tokens: float) -> float:
    """Scores + weighted sum of causal self-attention over ``tokens`` (about tokens^2 / 2 pairs, two matmuls)."""
    return 2.0 * num_layers * attn_width * float(tokens) ** 2


def lm_head_flops(model: nn.Module) -> float:
    """The vocabulary projection for one position: 2 * vocab * hidden."""
    return 2.0 * float(model.get_output_embeddings().weight.numel())


def _attn_width(config: Any) -> int:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return heads * head_dim


def vlm_accounting(vlm: Any, text_tokens: float, query_tokens: float | None = None) -> dict[str, Any]:
    """Accounting for one sample of a built VisionLanguageModel.

    text_tokens: Q, text tokens of a prompt (a mean is fine). query_tokens: length of the question the QueCC
    query pass reads (defaults to Q); counted only when the compressor uses a query in ``separate`` mode.
    """
    model = vlm.llm.model
    params = llm_params(model)
    t = vlm.visual_tokens
    q = float(text_tokens)
    config = model.config
    layers = config.num_hidden_layers
    connector = vlm.connector.flops()
    query_len = q if query_tokens is None else float(query_tokens)
    query_pass = 0.0
    query_mode = getattr(vlm, "query_mode", "separate")
    if vlm.connector.needs_query and query_mode == "separate":
        # Base model only (no LM head); embedding lookups cost no matmuls.
        query_pass = 2.0 * params["non_embedding"] * query_len
        query_pass += causal_attention_flops(layers, _attn_width(config), query_len)
    breakdown = {
        "llm": 2.0 * params["non_embedding"] * (q + t) + lm_head_flops(model),
        "llm_attention": causal_attention_flops(layers, _attn_width(config), q + t),
        "vision_tower": float(vlm.vision.flops()),
        "compressor": connector["compressor"],
        "projector_mlp": connector["projector_mlp"],
        "query_pass": query_pass,
    }
    return {
        "llm_params": params["total"],
        "llm_params_non_embedding": params["non_embedding"],
        "visual_tokens": t,
        "text_tokens": q,
        "query_mode": query_mode,
        "inference_flops": inference_flops(params["total"], q, t),
        "inference_flops_full": float(sum(breakdown.values())),
        "flops_breakdown": breakdown,
    }


def llm_pass_flops(
    non_embedding: float, lm_head: float, layers: int, attn_width: int, tokens: float
) -> float:
    """One forward of the LLM over ``tokens`` positions with the LM head on each (training computes every
    position's logits): 2 x (non-embedding params + vocab x hidden) per token, plus causal attention."""
    return 2.0 * (float(non_embedding) + float(lm_head)) * float(tokens) + causal_attention_flops(
        layers, attn_width, tokens
    )


def query_pass_flops(non_embedding: float, layers: int, attn_width: int, tokens: float) -> float:
    """QueCC's no-grad question pass (``separate`` mode): the base model over the question, no LM head."""
    return 2.0 * float(non_embedding) * float(tokens) + causal_attention_flops(layers, attn_width, tokens)


def training_flops(
    llm_pass: float,
    connector: float = 0.0,
    image_side: float = 0.0,
    llm_trains: bool = True,
    recompute: bool = False,
) -> float:
    """Model FLOPs of one training sample: the LLM pass x 3 (forward, backward for inputs and weights) or x 2
    when it is frozen (gradients still flow through it to the connector), one more forward under gradient
    checkpointing; the connector x 3; ``image_side`` (frozen tower + question pass) forward only."""
    passes = (3 if llm_trains else 2) + int(recompute)
    return passes * float(llm_pass) + 3.0 * float(connector) + float(image_side)
