"""The memory model (vlmscale/memory.py): its parameter counts against the real modules, its activation formula
against torch's saved tensors, its peaks against the H200 GPU check, and the strategy it picks for the paper's
sizes against arithmetic done here by hand."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vlmscale import memory
from vlmscale.assemble import group_config
from vlmscale.memory import GiB, choose, grid_job, llm_shape, memory_terms, vision_shape

REPO = Path(__file__).resolve().parents[1]
H200 = json.loads((REPO / "docs" / "gpu" / "gpu-check-h200.json").read_text())


# -- parameter counts: the formulas against the modules they describe ----------------------------------------
@pytest.mark.parametrize("name", ["qwen1.5-0.5b", "qwen1.5-1.8b", "qwen1.5-7b", "tiny-m"])
def test_llm_parameter_count_matches_the_hf_model(name):
    torch = pytest.importorskip("torch")
    import transformers

    group = group_config("llm", name)
    config = dict(group["config"] or memory.PUBLISHED_CONFIGS[group["pretrained"]])
    config.pop("model_type", None)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.Qwen2Config(**config))
    unique = {id(p): p.numel() for p in model.parameters()}  # a tied LM head once
    assert llm_shape(group).params == sum(unique.values())


@pytest.mark.parametrize("name", ["clip-vit-l-336", "tiny-clip"])
def test_vision_parameter_count_matches_the_hf_tower(name):
    torch = pytest.importorskip("torch")
    import transformers

    group = group_config("vision", name)
    config = dict(group["config"] or memory.PUBLISHED_CONFIGS[group["pretrained"]])
    config.pop("model_type", None)
    with torch.device("meta"):
        tower = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**config))
    assert vision_shape(group).params == sum(p.numel() for p in tower.parameters())


@pytest.mark.parametrize(
    "compressor,projector,llm_width",
    [
        ("quecc", "mlp2x_gelu", 48),
        ("quecc_noquery", "linear", 48),
        ("avgpool", "mlp3x_gelu", 40),
        ("none", "identity", 32),
    ],
)
@pytest.mark.parametrize("visual_tokens", [4, 64])
def test_connector_parameter_count_matches_the_built_connector(
    compressor, projector, llm_width, visual_tokens
):
    pytest.importorskip("torch")
    from vlmscale.models import build_connector

    vision = memory.VisionShape(
        hidden=32, intermediate=64, layers=4, image_size=32, patch_size=4
    )  # 8 x 8 grid
    tokens = 64 if compressor == "none" else visual_tokens
    built = build_connector(
        compressor,
        projector,
        visual_tokens=tokens,
        vision_width=32,
        multilevel_width=4 * 32,
        llm_width=llm_width,
        grid=vision.grid,
    )
    counted = memory.connector_params({"name": compressor}, {"name": projector}, vision, 4, llm_width, tokens)
    assert counted == sum(p.numel() for p in built.parameters())


# -- activations: the per-layer formula against what autograd keeps ------------------------------------------
def saved_bytes_per_layer(hidden, intermediate, trainable, layers=(1, 3), batch=2, length=96):
    """Bytes autograd saves per token per Qwen2 decoder layer (bf16, SDPA), parameters excluded: the difference
    between two depths, so embeddings and the final norm cancel."""
    torch = pytest.importorskip("torch")
    import transformers

    totals = []
    for depth in layers:
        config = transformers.Qwen2Config(
            vocab_size=64,
            hidden_size=hidden,
            intermediate_size=intermediate,
            num_hidden_layers=depth,
            num_attention_heads=4,
            num_key_value_heads=4,
        )
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(
            config, dtype=torch.bfloat16, attn_implementation="sdpa"
        ).requires_grad_(trainable)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        seen = {}

        def pack(t, params=params, seen=seen):
            storage = t.untyped_storage()
            if storage.data_ptr() not in params:
                seen[storage.data_ptr()] = storage.nbytes()
            return t

        embeds = torch.randn(batch, length, hidden, dtype=torch.bfloat16, requires_grad=True)
        mask = torch.ones(batch, length, dtype=torch.long)
        mask[1, -7:] = 0  # padded, as training batches are
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model.model(inputs_embeds=embeds, attention_mask=mask)
        totals.append(sum(seen.values()))
    return (totals[1] - totals[0]) / (layers[1] - layers[0]) / (batch * length)


@pytest.mark.parametrize("trainable", [True, False])
@pytest.mark.parametrize("hidden,intermediate", [(128, 352), (256, 512)])
def test_the_activation_formula_is_what_autograd_keeps(hidden, intermediate, trainable):
    measured = saved_bytes_per_layer(hidden, intermediate, trainable)
    shape = memory.LLMShape(hidden, intermediate, 1, 4, 4, 64, False)
    # the formula leaves out ~0.5 KB per token per layer (rotary tables, norm statistics, log-sum-exp)
    assert measured == pytest.approx(memory.llm_layer_bytes(shape, trainable), rel=0.08)


# -- the whole model against the one measurement we have ------------------------------------------------------
@pytest.mark.parametrize(
    "strategy,step", [("ddp", "train_ddp"), ("zero2", "train_zero2"), ("zero3", "train_zero3")]
)
def test_peaks_predicted_within_10_percent_of_the_h200_check(strategy, step):
    shape = H200["shape"]  # 0.5B-shaped Qwen (fp32 weights, bf16 autocast), CLIP-L/336, QueCC T=36, batch 16
    cfg = {
        "llm": {"name": "measured", "config": shape["llm"]["config"]},
        "vision": {**shape["vision"], "dtype": "float32"},
        "compressor": group_config("compressor", "quecc"),
        "projector": {"name": "mlp2x_gelu"},
        "visual_tokens": shape["visual_tokens"],
        "stage": "finetune",
        "data": {"max_length": shape["text_len"]},  # 476 text + 36 - 1 = 511 positions, as measured
        "global_batch": shape["batch"],
        "cluster": {"nodes": 1, "devices_per_node": 1, "gpu": "H200"},
    }
    job = memory.job_from_config(cfg)
    assert job.positions == H200["steps"][step]["seq_len"] == 511
    predicted = memory_terms(job, strategy, shape["batch"], False)["peak"] / GiB
    assert predicted == pytest.approx(H200["steps"][step]["peak_memory_gib"], rel=0.10)


# -- the choice, by hand -------------------------------------------------------------------------------------
# Grid points at T=576 (the longest: data.max_length 2048 - 1 + 576 = 2623 positions, QueCC window k=1), 8 GPUs,
# usable memory per 80 GB card (79.6 GiB): (79.6 - 1 GiB context) / 1.25 fragmentation.
POSITIONS = 2623
USABLE_80 = (79.6 - 1) / 1.25 * GiB
# CLIP ViT-L/336: 24 x (4*1024^2 + 4*1024 + 2*1024*4096 + 4096 + 1024 + 4*1024) + 3*14^2*1024 + 577*1024 + 1024
# + 4*1024 (patch conv, positions, CLS, two norms)
TOWER = 303_507_456
# Trainable parameters = LLM + QueCC (d*c + 3c + 8c^2 + 2*4096*c + c*1 + 16c, c=1024, d=LLM width) + the
# 2-layer MLP (c*d + d + d^2 + d). Qwen1.5 layers: 4h^2 + 3h (attention with q/k/v biases) + 3*h*i + 2h.
TRAINABLE = {
    # 24 x 12,850,176 + 1024 + 151,936 x 1024 (tied)  +  17,846,272 + 2,099,200
    "qwen1.5-0.5b": 463_987_712 + 19_945_472,
    # 32 x 202,395,648 + 4096 + 2 x 151,936 x 4096  +  20,992,000 + 20,979,712
    "qwen1.5-7b": 7_721_324_544 + 41_971_712,
    # 40 x 315,253,760 + 5120 + 2 x 152,064 x 5120  +  22,040,576 + 31,467,520
    "qwen1.5-14b": 14_167_290_880 + 53_508_096,
}


def per_token(hidden, intermediate, layers, vocab, checkpointing=False):
    layer = 24 * hidden + 8 * intermediate  # a trainable Qwen2 layer (kv heads = heads), bf16
    body = layers * 2 * hidden + layer if checkpointing else layers * layer
    return body + 10 * hidden + 12 * vocab  # + embeddings/final norm/head input, + the loss


def test_0_5b_finetunes_under_ddp_at_micro_batch_4_on_80gb():
    job = grid_job("qwen1.5-0.5b", "finetune", 576, 8, 79.6)
    p = TRAINABLE["qwen1.5-0.5b"]
    assert job.trainable_params == p and job.vision.params == TOWER
    states = p * (4 + 4 * 2 + 8) + 4 * TOWER  # fp32 weights, grads + DDP's bucket copy, Adam; fp32 tower
    sample = POSITIONS * per_token(1024, 2816, 24, 151936)
    assert states + 4 * sample < USABLE_80 < states + 8 * sample  # micro-batch 4 fits, 8 does not
    c = choose(job)
    assert (c.strategy, c.micro_batch, c.accumulate, c.checkpointing) == ("ddp", 4, 4, False)


def test_7b_finetune_needs_zero2_at_micro_batch_1_on_80gb():
    job = grid_job("qwen1.5-7b", "finetune", 576, 8, 79.6)
    p = TRAINABLE["qwen1.5-7b"]
    assert job.trainable_params == p
    assert p * (4 + 4 * 2 + 8) > USABLE_80  # DDP: the states alone do not fit
    buckets = 2 * (2 * 2e8 + 2e8)  # ZeRO-2: reduce (double-buffered) + allgather buckets, bf16
    zero2_states = 2 * (p + TOWER) + 2 * p / 8 + buckets + (4 + 8) * p / 8
    sample = POSITIONS * per_token(4096, 11008, 32, 151936)
    assert zero2_states + sample < USABLE_80 < zero2_states + 2 * sample
    c = choose(job)
    assert (c.strategy, c.micro_batch, c.accumulate, c.checkpointing) == ("zero2", 1, 16, False)


def test_14b_finetune_needs_gradient_checkpointing_under_zero2_on_80gb():
    job = grid_job("qwen1.5-14b", "finetune", 576, 8, 79.6)
    p = TRAINABLE["qwen1.5-14b"]
    assert job.trainable_params == p
    zero2_states = 2 * (p + TOWER) + 2 * p / 8 + 2 * (3 * 2e8) + (4 + 8) * p / 8
    plain = POSITIONS * per_token(5120, 13696, 40, 152064)
    recompute = POSITIONS * per_token(5120, 13696, 40, 152064, checkpointing=True)
    assert zero2_states + plain > USABLE_80 > zero2_states + recompute
    c = choose(job)
    assert (c.strategy, c.micro_batch, c.checkpointing) == ("zero2", 1, True)


def test_pretraining_keeps_ddp_for_every_size_on_80gb():
    # The frozen LLM costs 2 B per parameter and no optimizer: 14.2B -> 28 GB, well inside 63 GiB.
    for name in memory.GRID_SIZES:
        assert choose(grid_job(name, "pretrain", 576, 8, 79.6)).strategy == "ddp", name


# -- properties ----------------------------------------------------------------------------------------------
SIZES = memory.GRID_SIZES


def test_memory_grows_with_micro_batch_tokens_and_model_size():
    for strategy in memory.STRATEGIES:
        for checkpointing in (False, True):
            terms = {
                (n, t, m): memory_terms(grid_job(n, "finetune", t, 8, 79.6), strategy, m, checkpointing)
                for n in SIZES
                for t in (1, 576)
                for m in (1, 2)
            }
            for n in SIZES:
                act = {k[1:]: v["activations"] + v["loss"] for k, v in terms.items() if k[0] == n}
                assert act[1, 1] < act[1, 2] < act[576, 2] and act[1, 1] < act[576, 1] < act[576, 2]
                # the peak never falls with the micro-batch (it may stay: the optimizer step's scratch can
                # outweigh a small micro-batch's activations)
                assert terms[n, 576, 1]["peak"] <= terms[n, 576, 2]["peak"]
            for small, large in zip(SIZES, SIZES[1:]):
                assert all(
                    terms[small, t, m]["peak"] < terms[large, t, m]["peak"] for t in (1, 576) for m in (1, 2)
                )


def test_checkpointing_and_sharding_never_cost_memory():
    for name in SIZES:
        job = grid_job(name, "finetune", 144, 8, 79.6)
        for m in (1, 4):
            plain, recompute = (memory_terms(job, "zero2", m, c)["peak"] for c in (False, True))
            assert recompute < plain
            ddp, z2, z3 = (memory_terms(job, s, m, False) for s in memory.STRATEGIES)
            assert z3["optimizer"] == z2["optimizer"] < ddp["optimizer"]
            if name != "qwen1.5-0.5b":  # ZeRO-3's 2 GB gathered working set outweighs a 0.5B model's weights
                assert z3["weights"] < z2["weights"]


def test_more_memory_or_more_gpus_never_picks_a_slower_strategy_or_a_smaller_micro_batch():
    order = {s: i for i, s in enumerate(memory.STRATEGIES)}
    for name in SIZES:
        for stage in ("pretrain", "finetune"):
            small = choose(grid_job(name, stage, 576, 8, 79.6))
            large = choose(grid_job(name, stage, 576, 8, 140.4))
            assert order[large.strategy] <= order[small.strategy]
            if large.strategy == small.strategy and large.checkpointing == small.checkpointing:
                assert large.micro_batch >= small.micro_batch
    sizes_in_order = [choose(grid_job(n, "finetune", 576, 8, 79.6)).strategy for n in SIZES]
    assert [order[s] for s in sizes_in_order] == sorted(order[s] for s in sizes_in_order)
    for name in SIZES:  # sharding over 16 GPUs instead of 8 frees memory: never a slower strategy
        eight = choose(grid_job(name, "finetune", 576, 8, 79.6))
        sixteen = choose(dataclasses.replace(grid_job(name, "finetune", 576, 8, 79.6), gpus=16))
        assert order[sixteen.strategy] <= order[eight.strategy]


def test_micro_batches_keep_the_global_batch():
    assert memory.micro_batch_options(128, 8) == [16, 8, 4, 2, 1]
    assert memory.micro_batch_options(96, 8) == [12, 6, 4, 3, 2, 1]
    with pytest.raises(ValueError, match="does not split over 8 GPUs"):
        memory.micro_batch_options(100, 8)
    c = choose(grid_job("qwen1.5-4b", "finetune", 64, 8, 79.6))
    assert c.micro_batch * c.accumulate * 8 == 128


# -- the CLI -------------------------------------------------------------------------------------------------
def test_the_table_has_a_row_per_size_and_stage_and_bad_arguments_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "vlmscale.memory", "--gpus", "8", "--gpu-mem", "80"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| qwen1.5-")]
    assert len(rows) == 2 * len(SIZES)
    assert "| qwen1.5-7b | 7.72B | finetune | zero2 | 1 x 16 | no |" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "vlmscale.memory", "--gpus", "8"], cwd=REPO, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "exactly one of --gpu" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("kind", ["H100", "H200"])
def test_the_tables_in_docs_gpu_are_what_the_code_prints(kind):
    docs = (REPO / "docs" / "GPU.md").read_text()
    rows = [
        line
        for line in memory.table(8, memory.GPU_MEMORY_GIB[kind]).splitlines()
        if line.startswith("| qwen")
    ]
    assert rows and all(row in docs for row in rows), (
        "regenerate: python -m vlmscale.memory --gpus 8 --gpu " + kind
    )
