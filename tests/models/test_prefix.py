"""QueCC's ``query: prefix``: the question read from the prompt's cached prefix, no second LLM pass."""

from __future__ import annotations

import pytest
import torch

IMAGE = "<image>"
# Question-first prompts: a multi-turn image row, a single-turn image row, a text-only row.
PROMPTS = [
    "user what is the color ? <image> assistant",
    "user how many ? <image> assistant",
    "user is this red ? assistant",
]
ANSWERS = ["red <eos> user how many ? assistant two <eos>", "three star <eos>", "no <eos>"]


@pytest.fixture
def build(tokenizer, conf):
    """build(compressor="quecc", visual_tokens=4, seed=0, **compressor options) -> a tiny VLM."""
    from vlmscale.models import build_vlm

    def make(compressor="quecc", visual_tokens=4, seed=0, **options):
        torch.manual_seed(seed)
        return build_vlm(
            llm=conf("llm", "tiny-xs"),
            vision=conf("vision", "tiny-clip") | {"pretrain": None},
            compressor=conf("compressor", compressor) | options,
            projector=conf("projector", "mlp2x_gelu"),
            visual_tokens=visual_tokens,
            tokenizer=tokenizer,
        )

    return make


@pytest.fixture
def prefix_batch(tokenizer, enc):
    texts = [f"{p} {a}" for p, a in zip(PROMPTS, ANSWERS)]
    ids, mask = enc(texts)
    labels = torch.full_like(ids, -100)
    for i, p in enumerate(PROMPTS):  # train on everything after the first prompt (answers and turn 2)
        start, end = len(p.split()), int(mask[i].sum())
        labels[i, start:end] = ids[i, start:end]
    torch.manual_seed(1)
    return {
        "pixel_values": torch.randn(3, 3, 64, 64),
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "has_image": torch.tensor([True, True, False]),
    }


def row_alone(vlm, tokenizer, ids, pixel_values):
    """One plain forward (no cache, no padding) over [question prefix, visual tokens, rest] for one row, the
    query taken from a separate plain run over the prefix: the reference the two-part forward must match."""
    llm = vlm.llm
    image_at = (
        ids.tolist().index(tokenizer.convert_tokens_to_ids(IMAGE)) if pixel_values is not None else None
    )
    if image_at is None:
        return llm.model(input_ids=ids[None]).logits[0]
    prefix, rest = ids[None, :image_at], ids[None, image_at + 1 :]
    query = llm.decoder(input_ids=prefix).last_hidden_state[:, -1]
    features = vlm.vision(pixel_values[None], multilevel=vlm.connector.needs_multilevel)
    visual = vlm.connector(features, query)
    embeds = torch.cat([llm.embed(prefix), visual, llm.embed(rest)], dim=1)
    return llm.model(inputs_embeds=embeds).logits[0]


def test_two_part_forward_equals_one_plain_forward(tokenizer, prefix_batch, build):
    vlm = build(query="prefix").eval()
    with torch.no_grad():
        out = vlm(**prefix_batch, return_logits=True)
        for i in range(3):
            real = prefix_batch["attention_mask"][i].bool()
            has_image = bool(prefix_batch["has_image"][i])
            pixels = prefix_batch["pixel_values"][i] if has_image else None
            expected = row_alone(vlm, tokenizer, prefix_batch["input_ids"][i][real], pixels)
            got = out.logits[i][out.attention_mask[i].bool()]
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # Labels stay with their tokens: the same number of answer tokens, none on visual slots or padding.
    assert int((out.labels != -100).sum()) == int((prefix_batch["labels"] != -100).sum())
    assert out.labels.shape == out.attention_mask.shape == out.logits.shape[:2]


def test_prefix_loss_matches_the_plain_forwards_loss(prefix_batch, build):
    vlm = build(query="prefix").eval()
    with torch.no_grad():
        out = vlm(**prefix_batch, return_logits=True)
        plain = vlm.llm.model.loss_function(out.logits, out.labels, vocab_size=out.logits.shape[-1])
        torch.testing.assert_close(out.loss, plain)
        manual = torch.nn.functional.cross_entropy(
            out.logits[:, :-1].flatten(0, 1), out.labels[:, 1:].flatten(), ignore_index=-100
        )
        torch.testing.assert_close(out.loss, manual)


def test_prefix_mode_trains(prefix_batch, build):
    vlm = build(query="prefix", visual_tokens=16).train()
    params = [p for p in vlm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    for _ in range(12):
        loss = vlm(**prefix_batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.7 * losses[0], losses
    # The compressor learns through the cached prefix's query.
    assert vlm.connector.compressor.query_proj[0].weight.grad is not None


def test_detach_query_controls_the_gradient_into_the_llm(prefix_batch, build):
    grads = {}
    for detach in (True, False):
        vlm = build(query="prefix", detach_query=detach).train()
        vlm(**prefix_batch).loss.backward()
        grads[detach] = vlm.llm.model.get_input_embeddings().weight.grad.clone()
    # The loss reaches the prefix through the KV cache either way; without detach also through the query.
    assert grads[True].abs().sum() > 0
    assert not torch.allclose(grads[True], grads[False])


def _loss_and_grads(vlm, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    vlm.zero_grad(set_to_none=True)
    loss = vlm(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in vlm.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("query", ["prefix", "separate"])
def test_gradient_checkpointing_recomputes_and_gives_the_same_gradients(
    prefix_batch, build, query, tokenizer, enc
):
    """Checkpointing is really on (the flag is set and the decoder layers run again in the backward pass) and
    changes nothing the optimiser sees: the same loss and the same, non-zero, parameter gradients."""
    from vlmscale.lit import VLMLightningModule

    vlm = build(query=query).train()
    vlm.llm.model.config.use_cache = False
    batch = dict(prefix_batch)
    if query == "separate":  # the question alone, for the second LLM pass
        questions = ["what is the color ?", "how many ?", "is this red ?"]
        batch["query_ids"], batch["query_attention_mask"] = enc(questions)
    # A pre-hook inside the layer: transformers checkpoints a layer's forward (its own hooks run once either
    # way), and the recompute stops once the last saved tensor is back (a post-hook may never run).
    calls = []
    mlp = vlm.llm.model.model.layers[0].mlp
    mlp.register_forward_pre_hook(lambda *_: calls.append(torch.is_grad_enabled()))

    loss, grads = _loss_and_grads(vlm, batch)
    plain_calls = len(calls)
    # through the training module's switch (config key `gradient_checkpointing`), as a run turns it on
    VLMLightningModule(vlm, tokenizer, stage="finetune", gradient_checkpointing=True)  # LLM still trains
    assert all(layer.gradient_checkpointing for layer in vlm.llm.model.model.layers)
    calls.clear()
    ckpt_loss, ckpt_grads = _loss_and_grads(vlm, batch)
    assert len(calls) > plain_calls, "no decoder layer ran again in the backward pass: nothing recomputed"

    torch.testing.assert_close(ckpt_loss, loss, atol=1e-5, rtol=1e-5)
    assert ckpt_grads.keys() == grads.keys()
    assert any(n.startswith("llm.") for n in grads) and any(n.startswith("connector.") for n in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(ckpt_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)
    nonzero = {n for n, g in grads.items() if g.abs().sum() > 0}
    assert any(n.startswith("llm.model.model.layers.") for n in nonzero), "the checkpointed layers' gradients"
    assert any(n.startswith("connector.") for n in nonzero)


def greedy_reference(vlm, tokenizer, prompt, pixel_values, steps):
    """Decode one prompt alone, re-running the whole question-first sequence each step (no KV cache)."""
    ids = torch.tensor(tokenizer.convert_tokens_to_ids(prompt.split()))
    out = []
    for _ in range(steps):
        nxt = int(row_alone(vlm, tokenizer, ids, pixel_values)[-1].argmax())
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([nxt])])
    return out


def test_prefix_generation_matches_step_by_step_reference(tokenizer, prefix_batch, enc, build):
    vlm = build(query="prefix", visual_tokens=16).eval()
    vlm.eos_token_id = None  # random weights: every row runs the full length
    prompts = ["user what is the color ? <image> assistant", "user how ? <image> assistant", PROMPTS[2]]
    prompt_ids, prompt_mask = enc(prompts, side="left")
    pixels, has_image = prefix_batch["pixel_values"], prefix_batch["has_image"]
    gen = vlm.generate(pixels, prompt_ids, prompt_mask, has_image=has_image, max_new_tokens=4)
    assert gen.shape == (3, 4)
    with torch.no_grad():
        for i, prompt in enumerate(prompts):
            image = pixels[i] if bool(has_image[i]) else None
            assert gen[i].tolist() == greedy_reference(vlm, tokenizer, prompt, image, 4), i


@pytest.mark.parametrize("compressor,t", [("quecc_noquery", 16), ("avgpool", 4)])
def test_query_free_compressors_only_reorder(prefix_batch, compressor, t, build):
    """Without a query the prefix option changes nothing in the model: the data's question-first order is it."""
    separate = build(compressor, t, query="separate").eval()
    prefix = build(compressor, t, query="prefix").eval()
    assert prefix.question_first and not separate.question_first
    with torch.no_grad():
        a, b = separate(**prefix_batch, return_logits=True), prefix(**prefix_batch, return_logits=True)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.loss, b.loss)


def test_separate_stays_the_default(build):
    vlm = build()
    assert vlm.query_mode == "separate" and not vlm.question_first and vlm.detach_query
    assert build("none", 256).query_mode == "separate"  # no compressor, no option


def test_prefix_errors(prefix_batch, enc, build):
    with pytest.raises(ValueError, match=r"query='both'.*separate.*prefix"):
        build(query="both")
    vlm = build(query="prefix")
    ids, mask = enc(["<image> what is the color ? assistant red"])
    with pytest.raises(ValueError, match="question_first=True"):
        vlm(prefix_batch["pixel_values"][:1], ids, mask)


def test_accounting_counts_no_query_pass_in_prefix_mode(build):
    separate = build().accounting(30.0, query_tokens=10.0)
    prefix = build(query="prefix").accounting(30.0, query_tokens=10.0)
    assert separate["query_mode"] == "separate" and prefix["query_mode"] == "prefix"
    assert separate["flops_breakdown"]["query_pass"] > 0
    assert prefix["flops_breakdown"]["query_pass"] == 0.0
    saved = separate["inference_flops_full"] - prefix["inference_flops_full"]
    assert saved == pytest.approx(separate["flops_breakdown"]["query_pass"])
    assert prefix["inference_flops"] == separate["inference_flops"]  # 2N(Q+T) is the same


def test_quecc_prefix_config(build):
    vlm = build("quecc_prefix", 16)
    assert vlm.query_mode == "prefix" and vlm.question_first and vlm.detach_query
    reference = build("quecc", 16)
    assert vlm.state_dict().keys() == reference.state_dict().keys()  # a checkpoint loads in either mode
