"""LLM wrapper: the query pass (padding-invariant, no gradient) and the <image> splice."""

from __future__ import annotations

import pytest
import torch

from vlmscale.models import build_llm

T = 4


@pytest.fixture(scope="module")
def llm(conf, tokenizer):
    torch.manual_seed(0)
    lm = build_llm(**conf("llm", "tiny-xs"))
    lm.model.resize_token_embeddings(len(tokenizer))
    return lm


QUESTIONS = ["what is the color of the circle ?", "how many ?", "is this red"]


def test_query_same_for_left_and_right_padding_and_alone(llm, enc):
    right = llm.query_features(*enc(QUESTIONS, "right"))
    left = llm.query_features(*enc(QUESTIONS, "left"))
    assert right.shape == (3, llm.hidden_size)
    torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-4)
    alone = llm.query_features(*enc(QUESTIONS[1:2]))
    torch.testing.assert_close(right[1:2], alone, atol=1e-5, rtol=1e-4)
    # It is the final hidden state at the last real token (not at a pad).
    ids, _ = enc(QUESTIONS[1:2])
    hidden = llm.model(input_ids=ids, output_hidden_states=True).hidden_states[-1][:, -1]
    torch.testing.assert_close(alone, hidden, atol=1e-5, rtol=1e-4)


def test_query_pass_has_no_gradient(llm, enc):
    q = llm.query_features(*enc(QUESTIONS))
    assert not q.requires_grad and q.grad_fn is None


def test_splice_right_padding(llm, enc, tokenizer):
    ids, mask = enc(["user <image> red ? assistant yes", "user no"])
    labels = ids.masked_fill(mask == 0, -100)  # as collate pads them
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    visual = torch.randn(1, T, llm.hidden_size)
    rows = torch.tensor([True, False])
    s = llm.splice(ids, mask, visual, rows, image_id, labels, padding_side="right")
    assert s.inputs_embeds.shape == (2, ids.shape[1] + T - 1, llm.hidden_size)
    text = llm.embed(ids)
    torch.testing.assert_close(s.inputs_embeds[0, 1 : 1 + T], visual[0])
    torch.testing.assert_close(s.inputs_embeds[0, 1 + T :], text[0, 2:])  # tokens after <image> shift by T-1
    torch.testing.assert_close(s.inputs_embeds[1, :2], text[1, :2])  # text-only row untouched, padded right
    assert s.attention_mask.tolist() == [[1] * (5 + T), [1, 1] + [0] * (3 + T)]
    assert s.position_ids[0].tolist() == list(range(5 + T))
    assert (s.labels[0, 1 : 1 + T] == -100).all() and s.labels[0, 0] == labels[0, 0]
    assert (s.labels[1, 2:] == -100).all()


def test_splice_left_padding_keeps_prompts_right_aligned(llm, enc, tokenizer):
    ids, mask = enc(["user <image> red ? assistant", "user no assistant"], side="left")
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    visual = torch.randn(1, T, llm.hidden_size)
    s = llm.splice(ids, mask, visual, torch.tensor([True, False]), image_id, padding_side="left")
    length = 5 + T - 1
    assert s.attention_mask.tolist() == [[1] * length, [0] * (length - 3) + [1] * 3]
    assert s.position_ids[1, -3:].tolist() == [0, 1, 2] and s.position_ids[0, -1] == length - 1
    torch.testing.assert_close(s.inputs_embeds[1, -3:], llm.embed(ids[1, -3:]))
