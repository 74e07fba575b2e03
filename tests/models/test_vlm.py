"""The assembled VLM: loss, gradients, padding, generation, configs, errors."""

from __future__ import annotations

import pytest
import torch

from vlmscale.models import build_vlm

ARGS = (
    "pixel_values",
    "input_ids",
    "attention_mask",
    "labels",
    "query_ids",
    "query_attention_mask",
    "has_image",
)


def run(vlm, batch, **over):
    """The forward with its full logits too (training asks for the loss alone)."""
    b = {k: batch[k] for k in ARGS} | {"return_logits": True} | over
    return vlm(**b)


def test_forward_loss_and_shapes(tiny, batch):
    vlm = tiny("quecc", 16)
    out = run(vlm, batch)
    length = batch["input_ids"].shape[1] + 16 - 1
    assert vlm.visual_tokens == 16
    assert out.logits.shape == (3, length, vlm.llm.model.config.vocab_size)
    assert torch.isfinite(out.loss)
    assert out.labels.shape == (3, length) and int((out.labels != -100).sum()) == int(
        (batch["labels"] != -100).sum()
    )


def test_gradients_reach_compressor_and_projector_not_tower(tiny, batch):
    vlm = tiny("quecc", 16)
    run(vlm, batch).loss.backward()
    for module in (vlm.connector.compressor, vlm.connector.projector):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in vlm.vision.parameters())


def test_llm_gets_no_gradient_from_the_query_pass(tiny, batch):
    vlm = tiny("quecc", 16)
    rows = batch["has_image"]
    visual = vlm.encode_images(
        batch["pixel_values"][rows], batch["query_ids"][rows], batch["query_attention_mask"][rows]
    )
    visual.pow(2).sum().backward()
    assert vlm.connector.compressor.query_proj[0].weight.grad is not None
    assert all(p.grad is None for p in vlm.llm.parameters())


def test_question_text_changes_the_visual_tokens(tiny, batch, enc):
    vlm = tiny("quecc", 16).eval()
    pixels = batch["pixel_values"][:2].clone()
    pixels[1] = pixels[0]
    with torch.no_grad():
        visual = vlm.encode_images(pixels, *enc(["what is the color ?", "how many star are there ?"]))
    assert (visual[0] - visual[1]).abs().max() > 1e-4
    noquery = tiny("quecc_noquery", 16).eval()
    with torch.no_grad():
        same = noquery.encode_images(pixels)
    torch.testing.assert_close(same[0], same[1])


def test_left_and_right_padded_questions_give_the_same_output(tiny, batch, enc):
    vlm = tiny("quecc", 16).eval()
    with torch.no_grad():
        right = run(vlm, batch).logits
        q_ids, q_mask = enc(batch["questions"], side="left")
        left = run(vlm, batch, query_ids=q_ids, query_attention_mask=q_mask).logits
    torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-4)


def test_padding_in_a_batch_changes_nothing(tiny, batch):
    """Each row's logits equal those of the row alone: masks and positions stay right with padding."""
    vlm = tiny("quecc", 16).eval()
    with torch.no_grad():
        full = run(vlm, batch)
        for i in range(3):
            one = {k: batch[k][i : i + 1] for k in ARGS}
            n = int(one["attention_mask"].sum())
            one = {
                k: (v[:, :n] if k in ("input_ids", "attention_mask", "labels") else v) for k, v in one.items()
            }
            alone = vlm(**one, return_logits=True)
            real = full.attention_mask[i].bool()
            torch.testing.assert_close(full.logits[i][real], alone.logits[0], atol=1e-4, rtol=1e-4)


def test_text_only_rows_get_no_visual_tokens(tiny, batch):
    vlm = tiny("quecc", 16).eval()
    with torch.no_grad():
        out = run(vlm, batch)
        n = int(batch["attention_mask"][2].sum())
        text = vlm.llm.model(input_ids=batch["input_ids"][2:3, :n]).logits
        torch.testing.assert_close(out.logits[2, :n], text[0], atol=1e-5, rtol=1e-4)
        # has_image False even though the row holds <image>: the placeholder stays a plain token.
        flagged = run(vlm, batch, has_image=torch.tensor([False, True, False]))
        assert flagged.attention_mask[0].sum() == batch["attention_mask"][0].sum()


def test_loss_drops_on_a_fixed_batch(tiny, batch):
    vlm = tiny("quecc", 16).train()
    params = [p for p in vlm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    for _ in range(12):
        loss = run(vlm, batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.7 * losses[0], losses


def greedy_without_cache(vlm, batch, prompt_ids, prompt_mask, steps):
    """Reference decoding: re-run the whole (right-padded) sequence each step, no KV cache."""
    tokens = []
    for i in range(prompt_ids.shape[0]):
        n = int(prompt_mask[i].sum())
        ids = prompt_ids[i : i + 1, -n:]
        row = []
        for _ in range(steps):
            out = vlm(
                batch["pixel_values"][i : i + 1],
                ids,
                torch.ones_like(ids),
                query_ids=batch["query_ids"][i : i + 1],
                query_attention_mask=batch["query_attention_mask"][i : i + 1],
                has_image=batch["has_image"][i : i + 1],
            )
            nxt = out.logits[0, -1].argmax()
            row.append(int(nxt))
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
        tokens.append(row)
    return tokens


def test_generate_matches_uncached_greedy_and_pads_finished_rows(tiny, batch, enc):
    vlm = tiny("quecc", 16).eval()
    vlm.eos_token_id = None  # random weights: let every row run the full length first
    prompt_ids, prompt_mask = enc(batch["prompts"], side="left")
    args = (
        batch["pixel_values"],
        prompt_ids,
        prompt_mask,
        batch["query_ids"],
        batch["query_attention_mask"],
        batch["has_image"],
    )
    gen = vlm.generate(*args, max_new_tokens=4)
    assert gen.shape == (3, 4) and gen.dtype == torch.long
    with torch.no_grad():
        assert gen.tolist() == greedy_without_cache(vlm, batch, prompt_ids, prompt_mask, 4)
    # Make row 0's second token the eos: row 0 stops there and is padded; the others run on unchanged.
    vlm.eos_token_id = int(gen[0, 1])
    stopped = vlm.generate(*args, max_new_tokens=4)
    row0 = gen[0].tolist()
    cut = row0.index(vlm.eos_token_id) + 1
    assert stopped[0].tolist() == row0[:cut] + [vlm.pad_token_id] * (stopped.shape[1] - cut)
    for i in (1, 2):
        expected = gen[i].tolist()
        if vlm.eos_token_id in expected:
            k = expected.index(vlm.eos_token_id) + 1
            expected = expected[:k] + [vlm.pad_token_id] * (4 - k)
        assert stopped[i].tolist() == expected[: stopped.shape[1]]
    with pytest.raises(ValueError, match="LEFT-padded"):
        vlm.generate(
            batch["pixel_values"],
            *enc(batch["prompts"], side="right"),
            batch["query_ids"],
            batch["query_attention_mask"],
            batch["has_image"],
        )


@pytest.mark.parametrize(
    "compressor,projector,t",
    [
        ("quecc", "mlp2x_gelu", 4),
        ("quecc_noquery", "mlp2x_gelu", 64),
        ("avgpool", "mlp2x_gelu", 1),
        ("avgpool", "linear", 4),
        ("none", "mlp2x_gelu", 256),
        ("none", "linear", 256),
    ],
)
def test_every_compressor_projector_pair_builds_and_trains(tiny, batch, compressor, projector, t):
    vlm = tiny(compressor, t, projector=projector)
    assert vlm.connector.name == f"{compressor}-{projector}"
    out = run(vlm, batch)
    assert out.logits.shape[1] == batch["input_ids"].shape[1] + t - 1
    out.loss.backward()
    assert all(p.grad is not None for p in vlm.connector.parameters())


def test_config_errors(tiny, tokenizer, conf):
    with pytest.raises(ValueError, match=r"valid values are \[1, 4, 16, 64, 256\]"):
        tiny("quecc", 50)
    with pytest.raises(ValueError, match="visual_tokens must be the full grid"):
        tiny("none", 16)
    with pytest.raises(ValueError, match="mismatched widths"):
        tiny("none", 256, projector="identity")  # tiny-clip width 64 != tiny-xs width 32
    from tokenizers import Tokenizer, models

    vocab = {"<pad>": 0, "<unk>": 1, "a": 2}
    no_image = tokenizer.__class__(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        pad_token="<pad>",
        unk_token="<unk>",
    )
    with pytest.raises(ValueError, match="<image>"):
        build_vlm(
            conf("llm", "tiny-xs"),
            conf("vision", "tiny-clip"),
            conf("compressor", "quecc"),
            conf("projector", "mlp2x_gelu"),
            16,
            no_image,
        )


def test_embeddings_resized_to_tokenizer(tiny, tokenizer):
    vlm = tiny("avgpool", 16)
    assert vlm.llm.model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert vlm.llm.model.get_output_embeddings().weight.shape[0] == len(tokenizer)


def test_vlm_accounting(tiny):
    quecc = tiny("quecc", 16)
    acc = quecc.accounting(20.0, query_tokens=8.0)
    from vlmscale.flops import llm_params

    n = llm_params(quecc.llm.model)
    assert acc["llm_params"] == n["total"] and acc["llm_params_non_embedding"] == n["non_embedding"]
    assert acc["visual_tokens"] == 16 and acc["text_tokens"] == 20.0
    assert acc["inference_flops"] == 2 * n["total"] * (20 + 16)
    parts = acc["flops_breakdown"]
    assert set(parts) == {"llm", "llm_attention", "vision_tower", "compressor", "projector_mlp", "query_pass"}
    assert acc["inference_flops_full"] == pytest.approx(sum(parts.values()))
    assert acc["inference_flops_full"] > acc["inference_flops"]
    assert parts["query_pass"] >= 2 * n["non_embedding"] * 8
    assert parts["vision_tower"] == quecc.vision.flops()
    assert tiny("avgpool", 16).accounting(20.0)["flops_breakdown"]["query_pass"] == 0
