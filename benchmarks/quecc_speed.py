"""Forward+backward time of the connector paths (compressor + projector) at the paper's dimensions, per T.

    .venv/bin/python -m benchmarks.quecc_speed               # batch 4, G=24, widths 1024 / 4096 / 4096
    .venv/bin/python -m benchmarks.quecc_speed --threads 2 --repeats 5 --tokens 1 16 144

Rows per T: QueCC (windowed SDPA), the same QueCC maths done the reference's way (nn.MultiheadAttention over a
batch of batch x windows sequences, one query each; weights copied, outputs compared), quecc_noquery, avgpool,
and mlp2x_gelu alone on T tokens (at T=576 that is LLaVA's uncompressed path). All ratios come from this run.
Vision features and the question vector are inputs (the tower is frozen; the query pass runs without grad), so
only the compressor and projector are timed. The query pass is reported in FLOPs against a Qwen1.5-7B-sized LLM.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn

from vlmscale.errors import command, int_at_least
from vlmscale.models import Connector, VisionFeatures, build_connector
from vlmscale.models.quecc import QueCC, valid_token_counts

PAPER_T = [1, 4, 16, 36, 64, 144, 576]


class ReferenceQueCC(nn.Module):
    """QueCC's attention step as the reference implementation runs it, sharing every weight with ``quecc``."""

    uses_query = True  # the Compressor interface (vlmscale.models.compressors)
    uses_multilevel = True

    def __init__(self, quecc: QueCC) -> None:
        super().__init__()
        self.quecc = quecc
        width, attn = quecc.vision_width, quecc.attn
        self.mha = nn.MultiheadAttention(width, attn.num_heads, batch_first=True)
        with torch.no_grad():
            self.mha.in_proj_weight.copy_(
                torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
            )
            self.mha.in_proj_bias.copy_(
                torch.cat([attn.q_proj.bias, torch.zeros_like(attn.q_proj.bias), attn.v_proj.bias])
            )
            self.mha.out_proj.load_state_dict(attn.out_proj.state_dict())

    @property
    def out_width(self) -> int:
        return self.quecc.vision_width

    def flops(self) -> float:
        """QueCC's count with the reference's attention: k/v in-projections on all G*G patches, heads split."""
        c, n, t, heads = (
            self.quecc.vision_width,
            self.quecc.grid**2,
            self.quecc.visual_tokens,
            self.mha.num_heads,
        )
        ours = 4 * t * c * c + 2 * n * c * (heads if self.quecc.kernel > 1 else 1)
        reference = 2 * t * c * c + 2 * n * c * c + 2 * n * c
        return self.quecc.flops() + 2.0 * (reference - ours)

    def forward(self, patches, multilevel, query):
        c, g, k = self.quecc, self.quecc.grid, self.quecc.kernel
        batch, width, side = patches.shape[0], c.vision_width, g // k
        x = patches + c.query_proj(query).unsqueeze(1)
        q = c.downsample(c.q_mlp(x).transpose(1, 2).reshape(batch, width, g, g))
        q = q.flatten(2).transpose(1, 2).reshape(batch * side * side, 1, width)  # one sequence per window

        def windows(y):
            y = y.view(batch, side, k, side, k, width).permute(0, 1, 3, 2, 4, 5)
            return y.reshape(batch * side * side, k * k, width)

        out = self.mha(q, windows(c.k_mlp(multilevel)), windows(c.v_mlp(multilevel)))[0]
        return out.reshape(batch, side * side, width)


class KVProjection(nn.Module):
    """Just the part of QueCC that runs over every patch: the key and value MLPs (the same at every T)."""

    def __init__(self, quecc: QueCC) -> None:
        super().__init__()
        self.quecc = quecc

    def forward(self, patches, multilevel, query):
        return self.quecc.k_mlp(multilevel) + self.quecc.v_mlp(multilevel)


def time_paths(paths: dict[str, tuple], warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds of forward + backward (parameter gradients) per path after warm-up.

    Paths are timed round-robin (one run of each per round), so a noisy, shared machine slows them alike.
    """
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for i in range(warmup + repeats):
        for name, (fn, module) in paths.items():
            for p in module.parameters():
                p.grad = None
            start = time.perf_counter()
            fn().float().pow(2).mean().backward()
            if i >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in samples.items()}


def query_pass_flops(query_tokens: int) -> tuple[float, int]:
    """FLOPs of one question through a Qwen1.5-7B-sized decoder (built on the meta device: no weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from vlmscale.flops import causal_attention_flops, llm_params

    cfg = AutoConfig.for_model(
        "qwen2", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, vocab_size=151936, tie_word_embeddings=False,
    )  # fmt: skip
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    n = llm_params(model)["non_embedding"]
    return 2.0 * n * query_tokens + causal_attention_flops(32, 4096, query_tokens), n


@command
def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.quecc_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grid_t = valid_token_counts(24)
    ap.add_argument("--batch", type=int_at_least(1), default=4)
    ap.add_argument(
        "--tokens", type=int, nargs="+", default=PAPER_T, choices=grid_t, metavar="T", help=f"T in {grid_t}"
    )
    ap.add_argument(
        "--threads", type=int_at_least(1), default=1, help="torch threads, pinned for the whole run"
    )
    ap.add_argument("--warmup", type=int_at_least(0), default=1)
    ap.add_argument("--repeats", type=int_at_least(1), default=5)
    ap.add_argument(
        "--query-tokens", type=int_at_least(1), default=32, help="question length for the query-pass FLOPs"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    grid, width, ml_width, llm_width, b = 24, 1024, 4096, 4096, args.batch
    dims = dict(vision_width=width, multilevel_width=ml_width, llm_width=llm_width, grid=grid)
    feats = VisionFeatures(torch.randn(b, grid * grid, width), torch.randn(b, grid * grid, ml_width), grid)
    query = torch.randn(b, llm_width)

    full = build_connector("none", "mlp2x_gelu", visual_tokens=grid * grid, **dims)
    base_flops = b * sum(full.flops().values())
    qp_flops, qp_n = query_pass_flops(args.query_tokens)

    print(
        f"threads={args.threads} batch={b} grid={grid}x{grid} widths: vision {width}, multi-level {ml_width}, "
        f"LLM {llm_width}; forward+backward, median of {args.repeats} after {args.warmup} warm-up, round-robin"
    )
    print(
        f"'vs mlp@576': time / that of the uncompressed path (mlp2x_gelu on all 576 tokens, {base_flops / 1e9:.1f} "
        "GFLOP fwd), measured in the same rounds"
    )
    header = f"{'T':>4} {'path':<22} {'ms':>8} {'vs mlp@576':>10} {'vs ref':>7} {'GFLOP fwd':>10} {'max|diff|':>10}"
    print(header)
    print("-" * len(header))
    kv_time = None
    for t in args.tokens:
        quecc = build_connector("quecc", "mlp2x_gelu", visual_tokens=t, num_heads=8, **dims)
        # Identical weights (compressor and MLP shared), only the attention step done the reference's way.
        ref = Connector(ReferenceQueCC(quecc.compressor), quecc.projector, t, "quecc-reference")
        noquery = build_connector("quecc_noquery", "mlp2x_gelu", visual_tokens=t, num_heads=8, **dims)
        avgpool = build_connector("avgpool", "mlp2x_gelu", visual_tokens=t, **dims)
        with torch.no_grad():
            diff = (quecc(feats, query) - ref(feats, query)).abs().max().item()
        tokens_in = VisionFeatures(torch.randn(b, t, width), None, grid)
        rows = {
            "quecc": (lambda p=quecc: p(feats, query), quecc, sum(quecc.flops().values())),
            "quecc (reference MHA)": (lambda p=ref: p(feats, query), quecc, sum(ref.flops().values())),
            "quecc_noquery": (lambda p=noquery: p(feats), noquery, sum(noquery.flops().values())),
            "avgpool": (lambda p=avgpool: p(feats), avgpool, sum(avgpool.flops().values())),
            "mlp2x_gelu on T tokens": (lambda p=quecc, x=tokens_in.patches: p.projector(x), quecc.projector,
                                       quecc.flops()["projector_mlp"]),
            "mlp2x_gelu @576": (lambda: full(feats), full, sum(full.flops().values())),
        }  # fmt: skip
        if kv_time is None:  # the key/value MLPs over all patches, once: they do not depend on T
            kv = KVProjection(quecc.compressor)
            rows["k/v MLPs only"] = (lambda m=kv: m(feats.patches, feats.multilevel, query), kv, 0.0)
        times = time_paths({name: (fn, m) for name, (fn, m, _) in rows.items()}, args.warmup, args.repeats)
        kv_time = times.get("k/v MLPs only", kv_time)
        for name, (_, _, flops) in rows.items():
            if name == "k/v MLPs only":
                continue
            vs_ref = f"{times[name] / times['quecc (reference MHA)']:.2f}" if name == "quecc" else ""
            shown_diff = f"{diff:.1e}" if name == "quecc" else ""
            print(
                f"{t:>4} {name:<22} {times[name] * 1e3:>8.0f} {times[name] / times['mlp2x_gelu @576']:>10.2f} "
                f"{vs_ref:>7} {b * flops / 1e9:>10.2f} {shown_diff:>10}",
                flush=True,
            )
        print(
            f"{'':>4} (k/v MLPs alone, timed at T={args.tokens[0]}: {kv_time * 1e3:.0f} ms = "
            f"{kv_time / times['quecc']:.0%} of quecc at this T)"
        )
    c = quecc.compressor
    kv_flops = 2.0 * b * grid**2 * 2 * (ml_width * width + width * width)
    print(
        f"\nkey/value MLPs over all {grid * grid} patches (same at every T): "
        f"{kv_time * 1e3:.0f} ms fwd+bwd, {kv_flops / 1e9:.1f} GFLOP fwd"
    )
    print(
        "QueCC's ratio to its reference is printed on each quecc row ('vs ref'); max|diff| is the largest "
        "absolute difference of their outputs"
    )
    module_flops = c.flops()
    print(
        f"QueCC query pass (Qwen1.5-7B-sized decoder, {qp_n / 1e9:.2f}B non-embedding params, "
        f"{args.query_tokens}-token question): {qp_flops / 1e9:.0f} GFLOP per image, forward only, "
        f"= {qp_flops / module_flops:.0f}x the QueCC module at T={c.visual_tokens} ({module_flops / 1e9:.1f} GFLOP)"
    )


if __name__ == "__main__":
    sys.exit(main())
