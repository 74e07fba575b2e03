"""The loss at answer positions only (LanguageModel.loss) equals HF's loss over the full logits, gradients too."""

from __future__ import annotations

import pytest
import torch

# Image-first rows for query=separate, question-first rows for query=prefix; the last row of each is
# text-only, and row 1 has no answer token at all (its labels are all -100).
PROMPTS = {
    "quecc": [
        "user <image> what is the color ? assistant",
        "user <image> how many ? assistant",
        "user is this red ? assistant",
    ],
    "quecc_prefix": [
        "user what is the color ? <image> assistant",
        "user how many ? <image> assistant",
        "user is this red ? assistant",
    ],
}
ANSWERS = ["red <eos> user how many ? assistant two three <eos>", "three star <eos>", "no <eos>"]
QUESTIONS = ["what is the color ?", "how many ?", "is this red ?"]


def make_batch(enc, compressor: str, answered=(True, False, True)) -> dict:
    prompts = PROMPTS[compressor]
    ids, mask = enc([f"{p} {a}" for p, a in zip(prompts, ANSWERS)])  # right-padded
    labels = torch.full_like(ids, -100)
    for i, p in enumerate(prompts):
        if answered[i]:
            start, end = len(p.split()), int(mask[i].sum())
            labels[i, start:end] = ids[i, start:end]
    q_ids, q_mask = enc(QUESTIONS)
    torch.manual_seed(1)
    return {
        "pixel_values": torch.randn(3, 3, 64, 64),
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "query_ids": q_ids,
        "query_attention_mask": q_mask,
        "has_image": torch.tensor([True, True, False]),
    }


def full_logits_loss(vlm, batch):
    """The old path: [B, L', vocab] logits, then HF's own causal-LM loss over them."""
    out = vlm(**batch, return_logits=True)
    return vlm.llm.model.loss_function(out.logits, out.labels, vocab_size=out.logits.shape[-1])


def grads_of(vlm, loss) -> dict[str, torch.Tensor]:
    vlm.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in vlm.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("compressor", ["quecc", "quecc_prefix"])
@pytest.mark.parametrize("chunk", [1024, 3])  # one head call; chunks of 3 under activation checkpointing
def test_answer_only_loss_and_gradients_equal_the_full_logits_path(tiny, enc, compressor, chunk):
    vlm = tiny(compressor, visual_tokens=4).train()
    vlm.llm.requires_grad_(True)  # finetune: the LLM trains too, so its gradients are compared as well
    vlm.llm.loss_chunk_size = chunk
    batch = make_batch(enc, compressor)
    assert vlm.query_mode == ("prefix" if compressor == "quecc_prefix" else "separate")
    answers = int((batch["labels"][:, 1:] != -100).sum())
    assert chunk < answers or chunk == 1024  # chunks of 3 really split this batch

    new = vlm(**batch).loss
    old = full_logits_loss(vlm, batch)
    torch.testing.assert_close(new, old, atol=1e-6, rtol=1e-6)

    new_grads, old_grads = grads_of(vlm, new), grads_of(vlm, old)
    assert set(new_grads) == set(old_grads)
    assert any(n.startswith("llm.") for n in new_grads) and any(n.startswith("connector.") for n in new_grads)
    for name in new_grads:
        torch.testing.assert_close(new_grads[name], old_grads[name], atol=1e-6, rtol=1e-5, msg=name)


def test_only_answer_positions_reach_the_lm_head(tiny, enc):
    vlm = tiny("quecc", visual_tokens=4)
    vlm.llm.loss_chunk_size = 4
    batch = make_batch(enc, "quecc")
    rows = []
    head = vlm.llm.model.get_output_embeddings()
    handle = head.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    try:
        out = vlm(**batch)
        out.loss.backward()
    finally:
        handle.remove()
    answers = int((batch["labels"][:, 1:] != -100).sum())
    assert out.logits is None  # training gets the loss, never the [B, L', vocab] tensor
    # forward: the answers in chunks of <= 4; backward recomputes each chunk once more
    assert max(rows) <= 4 and sum(rows) == 2 * answers


def test_a_batch_without_answers_has_zero_loss_and_still_backpropagates(tiny, enc):
    vlm = tiny("quecc", visual_tokens=4)
    batch = make_batch(enc, "quecc", answered=(False, False, False))
    loss = vlm(**batch).loss
    assert loss.item() == 0.0
    loss.backward()  # no error: the graph is intact
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in vlm.parameters())


def test_logits_only_when_asked(tiny, enc):
    vlm = tiny("quecc", visual_tokens=4).eval()
    batch = make_batch(enc, "quecc")
    with torch.no_grad():
        assert vlm(**batch).logits is None
        without_labels = vlm(**{**batch, "labels": None})
        assert (
            without_labels.loss is None
            and without_labels.logits.shape[:2] == without_labels.attention_mask.shape
        )
