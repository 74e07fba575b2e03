"""Precomputed VisionFeatures (a feature cache's) in place of pixel_values: the same loss, gradients and
generations as the tower's own output, and the tower never runs."""

from __future__ import annotations

import pytest
import torch

from vlmscale.models import VisionTower

PREFIX_PROMPTS = ["user what is the color ? <image> assistant", "user how many ? <image> assistant"]


def frozen_features(vlm, pixel_values):
    """The tower's output for every row of the batch, as a cache would hold it (text-only rows included)."""
    with torch.no_grad():
        return vlm.vision(pixel_values, multilevel=vlm.connector.needs_multilevel)


@pytest.fixture
def no_tower(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the vision tower ran although features were given")

    return lambda: monkeypatch.setattr(VisionTower, "forward", refuse)


@pytest.mark.parametrize("compressor", ["quecc", "quecc_prefix", "avgpool"])
def test_features_give_the_pixels_loss_gradients_and_generations(
    compressor, tiny, batch, enc, tokenizer, no_tower
):
    vlm = tiny(compressor, 4).eval()
    if compressor == "quecc_prefix":  # the question before <image>: the two-part forward
        prompts = PREFIX_PROMPTS + batch["prompts"][2:]
        ids, mask = enc([f"{p} red <eos>" for p in prompts])
        inputs = {"input_ids": ids, "attention_mask": mask, "labels": ids.clone()}
    else:
        prompts = batch["prompts"]
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    inputs |= {k: batch[k] for k in ("query_ids", "query_attention_mask", "has_image")}
    prompt_ids, prompt_mask = enc(prompts, side="left")
    gen_inputs = {k: inputs[k] for k in ("query_ids", "query_attention_mask", "has_image")}
    gen_inputs |= {"prompt_ids": prompt_ids, "prompt_attention_mask": prompt_mask, "max_new_tokens": 3}

    live = vlm(batch["pixel_values"], **inputs, return_logits=True)
    live.loss.backward()
    live_grads = [p.grad.clone() for p in vlm.connector.parameters()]
    live_tokens = vlm.generate(batch["pixel_values"], **gen_inputs)
    vlm.zero_grad()

    features = frozen_features(vlm, batch["pixel_values"])
    no_tower()
    cached = vlm(None, **inputs, features=features, return_logits=True)
    cached.loss.backward()
    assert torch.equal(cached.loss, live.loss) and torch.equal(cached.logits, live.logits)
    assert all(torch.equal(p.grad, g) for p, g in zip(vlm.connector.parameters(), live_grads))
    assert torch.equal(vlm.generate(None, **gen_inputs, features=features), live_tokens)


def test_a_multilevel_connector_refuses_features_without_the_multilevel_layers(tiny, batch):
    vlm = tiny("quecc", 4)
    features = frozen_features(vlm, batch["pixel_values"])
    features.multilevel = None
    with pytest.raises(ValueError, match="multi-level features"):
        vlm(
            None,
            batch["input_ids"],
            batch["attention_mask"],
            features=features,
            has_image=batch["has_image"],
            query_ids=batch["query_ids"],
            query_attention_mask=batch["query_attention_mask"],
        )
