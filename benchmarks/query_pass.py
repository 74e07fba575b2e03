"""What the question-as-prefix saves: per-image prefill latency, QueCC ``query: separate`` vs ``prefix``.

    .venv/bin/python -m benchmarks.query_pass                # tiny-m and Qwen1.5-0.5B shapes
    .venv/bin/python -m benchmarks.query_pass --llm tiny --tokens 1 16

Same weights in both modes (tiny-m, or a random LLM shaped like Qwen1.5-0.5B; QueCC at the paper's widths on
a 24 x 24 grid), CPU, batch 1, a 32-token question inside a 4 + 4 token template. ``separate`` runs the LLM
over the bare question for the query, then over the prompt; ``prefix`` runs the prompt once, the question
first, the query read from the cached prefix. Timed: from the vision features to the first token's logits
(``vlm.generate(..., max_new_tokens=1)``), in this process's CPU seconds (a shared machine's other jobs left
out); the tower's output is an input, as it is the same in both modes.
Printed per T: the fastest of ``--repeats`` runs of each mode (interleaved), the measured prefix/separate ratio and the
ratio the full FLOPs count predicts (``vlm.accounting``, tower excluded). Target: within 10%.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from benchmarks.prefill import GRID_T, QUESTION_TOKENS, QWEN15_05B, TINY_M, clock, prompt
from vlmscale.errors import command, int_at_least
from vlmscale.models import VisionFeatures, VisionLanguageModel, build_connector, build_llm

LLMS = {"tiny": TINY_M, "qwen1.5-0.5b": QWEN15_05B}
# Vision features as CLIP-L/336 gives them to QueCC (24 x 24 patches, width 1024, four layers); the tiny LLM
# gets tiny-clip widths on the same grid, so every T below tiles it.
FEATURES = {"tiny": (24, 64, 4), "qwen1.5-0.5b": (24, 1024, 4)}


class FixedFeatures(nn.Module):
    """Stands in for the frozen tower: returns one precomputed image's features, costs no FLOPs."""

    def __init__(self, grid: int, width: int, levels: int, image_size: int = 336) -> None:
        super().__init__()
        self.grid, self.hidden_size, self.multilevel_size = grid, width, width * levels
        self.register_buffer("patches", torch.randn(1, grid * grid, width))
        self.register_buffer("multilevel", torch.randn(1, grid * grid, width * levels))
        self.encoder = nn.Module()
        self.encoder.config = type("Config", (), {"image_size": image_size})()

    def forward(self, pixel_values: torch.Tensor, multilevel: bool = False) -> VisionFeatures:
        batch = pixel_values.shape[0]
        levels = self.multilevel.expand(batch, -1, -1) if multilevel else None
        return VisionFeatures(self.patches.expand(batch, -1, -1), levels, self.grid)

    def flops(self) -> float:
        return 0.0


class Models:
    """What ``benchmarks.prefill.prompt`` reads: the LLM, the image token, the query mode, device and dtype."""

    def __init__(self, tower: FixedFeatures, llm, query: str) -> None:
        self.tower, self.llm, self.query = tower, llm, query
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.image_token_id = llm.model.config.vocab_size - 1


def build_pair(llm_name: str, llm, visual_tokens: int) -> dict[str, tuple[VisionLanguageModel, dict]]:
    """``{mode: (vlm, inputs)}`` for both query modes, sharing the LLM and the compressor's weights."""
    torch.manual_seed(visual_tokens)
    grid, width, levels = FEATURES[llm_name]
    tower = FixedFeatures(grid, width, levels)
    out = {}
    state = None
    for mode in ("separate", "prefix"):
        connector = build_connector(
            "quecc",
            "mlp2x_gelu",
            visual_tokens=visual_tokens,
            vision_width=width,
            multilevel_width=width * levels,
            llm_width=llm.hidden_size,
            grid=grid,
            num_heads=8,
            query=mode,
        )
        state = state or connector.state_dict()
        connector.load_state_dict(state)
        vlm = VisionLanguageModel(tower, connector, llm, llm.model.config.vocab_size - 1, 0, None).eval()
        out[mode] = (vlm, prompt(Models(tower, llm, mode)))
    return out


@torch.no_grad()
def interleaved_seconds(pair: dict, repeats: int) -> dict[str, float]:
    """Fastest seconds per mode (the run least disturbed by other load), the modes alternating."""
    times: dict[str, list[float]] = {mode: [] for mode in pair}
    now = clock("cpu")
    for i in range(repeats + 1):
        for mode, (vlm, inputs) in pair.items():
            start = now()
            vlm.generate(**inputs)
            if i:  # the first round warms up
                times[mode].append(now() - start)
    return {mode: min(t) for mode, t in times.items()}


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.query_pass",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--llm", nargs="+", choices=list(LLMS), default=list(LLMS))
    parser.add_argument(
        "--tokens",
        type=int,
        nargs="+",
        default=[1, 16, 144],
        choices=GRID_T,
        metavar="T",
        help=f"T in {GRID_T}",
    )
    parser.add_argument("--threads", type=int_at_least(1), default=1)
    parser.add_argument("--repeats", type=int_at_least(1), default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"query pass: separate vs prefix, CPU, threads={args.threads}, batch 1, {QUESTION_TOKENS}-token question"
    )
    print(
        f"{'llm':>13} {'T':>4} {'separate s':>10} {'prefix s':>9} {'measured':>8} {'FLOPs':>6} {'meas/FLOPs':>10}"
    )
    for name in args.llm:
        torch.manual_seed(0)
        llm = build_llm(name, config=LLMS[name]).eval()
        for t in args.tokens:
            pair = build_pair(name, llm, t)
            seconds = interleaved_seconds(pair, args.repeats)
            text_tokens = float(pair["prefix"][1]["prompt_ids"].shape[1] - 1)
            full = {
                mode: vlm.accounting(text_tokens, query_tokens=QUESTION_TOKENS)["inference_flops_full"]
                for mode, (vlm, _) in pair.items()
            }
            measured = seconds["prefix"] / seconds["separate"]
            predicted = full["prefix"] / full["separate"]
            print(
                f"{name:>13} {t:>4} {seconds['separate']:>10.4f} {seconds['prefix']:>9.4f} {measured:>8.3f} "
                f"{predicted:>6.3f} {measured / predicted:>10.3f}"
            )


if __name__ == "__main__":
    sys.exit(main())
