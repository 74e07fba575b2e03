"""End-to-end prefill latency of one VLM per visual-token count T, next to the FLOPs counts' predictions.

    .venv/bin/python -m benchmarks.prefill                  # CLIP-L/336 tower + Qwen1.5-0.5B LLM
    .venv/bin/python -m benchmarks.prefill --tiny           # tiny CLIP + tiny-m, seconds
    .venv/bin/python -m benchmarks.prefill --device cuda --dtype bfloat16

Prefill = what one image-question pair costs before the first answer token: vision tower, QueCC, projector MLP,
the LLM over template + question + T visual tokens (and, in ``--query separate``, the query pass), up to the
first token's logits (``vlm.generate(..., max_new_tokens=1)``). Random weights, batch 1, a 32-token question.
The same tower and LLM serve every T; only the compressor changes. Printed per T: measured seconds (the fastest of
``--repeats`` rounds, each timing every T once), and the T=576 -> T speedup measured, predicted by the paper's 2N(Q+T), and predicted by the
project's full count (``vlm.accounting``). Importable: :func:`build_prefill_models`, :func:`prefill_seconds`,
:func:`run` (what ``main`` prints, as a list of dicts).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from vlmscale.assemble import group_config
from vlmscale.errors import UserError, command, int_at_least
from vlmscale.models import VisionLanguageModel, build_connector, build_llm, build_vision_tower
from vlmscale.models.quecc import valid_token_counts

PAPER_T = [1, 4, 16, 36, 144, 576]
GRID_T = valid_token_counts(24)  # both towers here have a 24 x 24 patch grid
QUESTION_TOKENS = 32
TEMPLATE = (4, 4)  # template tokens before the question and after the image ("USER: ", " ASSISTANT:")

CLIP_L_336 = group_config("vision", "clip-vit-l-336-random")["config"]  # the real shapes, random weights
QWEN15_05B = group_config("llm", "qwen1.5-0.5b-random")["config"]
TINY_CLIP = {  # conf/vision/tiny-clip.yaml on a 24 x 24 grid, so that every paper T tiles it
    "model_type": "clip_vision_model",
    "image_size": 96,
    "patch_size": 4,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
}
TINY_M = {  # conf/llm/tiny-m.yaml
    "model_type": "qwen2",
    "vocab_size": 1024,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
}


@dataclass
class PrefillModels:
    """A tower and an LLM shared by every T, and ``vlm(T)`` around them with that T's compressor."""

    tower: Any
    llm: Any
    query: str
    device: torch.device
    dtype: torch.dtype

    @property
    def image_token_id(self) -> int:
        return self.llm.model.config.vocab_size - 1  # any id works: the weights are random

    def vlm(self, visual_tokens: int) -> VisionLanguageModel:
        torch.manual_seed(visual_tokens)
        connector = build_connector(
            "quecc",
            "mlp2x_gelu",
            visual_tokens=visual_tokens,
            vision_width=self.tower.hidden_size,
            multilevel_width=self.tower.multilevel_size,
            llm_width=self.llm.hidden_size,
            grid=self.tower.grid,
            num_heads=8,
            query=self.query,
        ).to(self.device, self.dtype)
        return VisionLanguageModel(self.tower, connector, self.llm, self.image_token_id, 0, None).eval()


def build_prefill_models(
    tiny: bool = False, query: str = "prefix", device: str = "cpu", dtype: str = "float32"
) -> PrefillModels:
    """CLIP-L/336 + Qwen1.5-0.5B shapes (``tiny``: tiny CLIP on a 24 x 24 grid + tiny-m), random init."""
    vision_cfg, llm_cfg = (TINY_CLIP, TINY_M) if tiny else (CLIP_L_336, QWEN15_05B)
    torch.manual_seed(0)
    tower = build_vision_tower(
        "tiny-clip-24" if tiny else "clip-vit-l-336",
        config=vision_cfg,
        select_layer=-2,
        multilevel_layers=[1, 2, 3, 4] if tiny else [12, 16, 22, 23],
        freeze=True,
        dtype=dtype,
    )
    llm = build_llm("tiny-m" if tiny else "qwen1.5-0.5b-shaped", config=llm_cfg, dtype=dtype)
    target = torch.device(device)
    tower, llm = tower.to(target).eval(), llm.to(target).eval()
    return PrefillModels(tower, llm, query, target, next(tower.parameters()).dtype)


def prompt(models: PrefillModels, question_tokens: int = QUESTION_TOKENS, seed: int = 0) -> dict[str, Any]:
    """One image + question, laid out for the model's query mode (batch 1, no padding)."""
    gen = torch.Generator().manual_seed(seed)
    vocab = models.image_token_id  # random ids below the image token's
    before, after = (torch.randint(1, vocab, (n,), generator=gen) for n in TEMPLATE)
    question = torch.randint(1, vocab, (question_tokens,), generator=gen)
    image = torch.tensor([models.image_token_id])
    parts = [before, question, image, after] if models.query == "prefix" else [before, image, question, after]
    ids = torch.cat(parts)[None]
    size = models.tower.encoder.config.image_size
    return {
        "pixel_values": torch.randn(1, 3, size, size, generator=gen).to(models.device, models.dtype),
        "prompt_ids": ids.to(models.device),
        "prompt_attention_mask": torch.ones_like(ids).to(models.device),
        "query_ids": question[None].to(models.device),
        "query_attention_mask": torch.ones(1, question_tokens, dtype=torch.long, device=models.device),
        "max_new_tokens": 1,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: str | torch.device) -> Any:
    """This process's CPU time on a CPU (a shared machine's other jobs then don't count: time spent waiting
    for a core is left out), wall time on an accelerator."""
    return time.process_time if torch.device(device).type == "cpu" else time.perf_counter


@torch.no_grad()
def prefill_seconds(vlm: VisionLanguageModel, inputs: dict[str, Any]) -> float:
    """Seconds of one prefill, up to the first token's logits (see :func:`clock`)."""
    device = inputs["prompt_ids"].device
    now = clock(device)
    _sync(device)
    start = now()
    vlm.generate(**inputs)
    _sync(device)
    return now() - start


def run(
    tiny: bool = False,
    tokens: list[int] | None = None,
    query: str = "prefix",
    device: str = "cpu",
    dtype: str = "float32",
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """Per T: seconds, text tokens Q, the paper's and the full FLOPs count, and the breakdown.

    Every round times every T once (after one warm-up round), so a change in machine load hits all T alike;
    a T's seconds are its fastest round, the one least disturbed by whatever else the machine runs.
    """
    models = build_prefill_models(tiny, query, device, dtype)
    inputs = prompt(models)
    text_tokens = float(inputs["prompt_ids"].shape[1] - 1)  # Q: the prompt minus its <image> placeholder
    vlms = {t: models.vlm(t) for t in tokens or PAPER_T}
    times: dict[int, list[float]] = {t: [] for t in vlms}
    for round_ in range(repeats + 1):
        for t, vlm in vlms.items():
            seconds = prefill_seconds(vlm, inputs)
            if round_:
                times[t].append(seconds)
    rows = []
    for t, vlm in vlms.items():
        accounting = vlm.accounting(text_tokens, query_tokens=QUESTION_TOKENS)
        rows.append(
            {
                "visual_tokens": t,
                "seconds": min(times[t]),
                "text_tokens": text_tokens,
                "paper_flops": accounting["inference_flops"],
                "full_flops": accounting["inference_flops_full"],
                "breakdown": accounting["flops_breakdown"],
            }
        )
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    """A table of speedups relative to the largest T: measured, predicted by 2N(Q+T), by the full count."""
    top = max(rows, key=lambda r: r["visual_tokens"])
    lines = [
        f"speedup = time (or FLOPs) at T={top['visual_tokens']} / at T",
        f"{'T':>4} {'seconds':>9} {'tower share':>11} {'measured':>9} {'2N(Q+T)':>8} {'full':>6} {'full/measured':>13}",
    ]
    for r in sorted(rows, key=lambda r: r["visual_tokens"]):
        measured = top["seconds"] / r["seconds"]
        paper = top["paper_flops"] / r["paper_flops"]
        full = top["full_flops"] / r["full_flops"]
        tower = r["breakdown"]["vision_tower"] / r["full_flops"]
        lines.append(
            f"{r['visual_tokens']:>4} {r['seconds']:>9.3f} {tower:>11.2f} {measured:>9.2f} {paper:>8.2f} "
            f"{full:>6.2f} {full / measured:>13.3f}"
        )
    return "\n".join(lines)


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.prefill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tiny", action="store_true", help="tiny CLIP (24x24 grid) + tiny-m LLM")
    parser.add_argument(
        "--tokens", type=int, nargs="+", default=PAPER_T, choices=GRID_T, metavar="T", help=f"T in {GRID_T}"
    )
    parser.add_argument("--query", choices=["separate", "prefix"], default="prefix")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int_at_least(1), default=1)
    parser.add_argument("--repeats", type=int_at_least(1), default=3)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: no CUDA device on this machine; use --device cpu")
    torch.set_num_threads(args.threads)
    rows = run(args.tiny, args.tokens, args.query, args.device, args.dtype, args.repeats)
    shape = "tiny CLIP (24x24) + tiny-m" if args.tiny else "CLIP-L/336 + Qwen1.5-0.5B shapes"
    print(
        f"prefill, {shape}, query={args.query}, {args.device} {args.dtype}, threads={args.threads}, batch 1"
    )
    kind = "CPU seconds of this process" if clock(args.device) is time.process_time else "wall seconds"
    print(f"Q = {rows[0]['text_tokens']:.0f} text tokens ({QUESTION_TOKENS}-token question)")
    print(f"seconds: {kind}, the fastest of {args.repeats} rounds")
    print(report(rows))


if __name__ == "__main__":
    sys.exit(main())
