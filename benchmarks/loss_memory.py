"""Peak memory and time of the LM loss: full [B, L, vocab] logits (old) against answer positions only (new).

    python -m benchmarks.loss_memory                    # Qwen1.5-0.5B shape: vocab 151936, hidden 1024, 16 x 511
    python -m benchmarks.loss_memory --tiny             # vocab 1024, hidden 64, 4 x 64: seconds
    python -m benchmarks.loss_memory --device cuda      # bf16 autocast, peak from torch.cuda (the GPU check's way)

Both paths start from the same final hidden states [B, L, D] (requires grad) and the same LM head (the project's
LanguageModel around a randomly initialised Qwen2 with one layer) and run loss + backward:
  old  `LanguageModel.logits(hidden)` -> HF's `loss_function` (what the forward did before: every position
       through the vocabulary projection, fp32 logits, cross-entropy over the shifted labels);
  new  `LanguageModel.loss(hidden, labels)` (the hidden states of the answer positions only, in chunks of
       `loss_chunk_size` under activation checkpointing).
Each variant runs in its own process: peak memory is the process's resident-set high-water mark (VmHWM, reset
through /proc/self/clear_refs right before the loss) minus its resident set then, so it counts the loss path's
own buffers, logits, softmax and gradients (the head's weight gradient included, the same in both); on CUDA it
is torch.cuda's peak allocation over the same span. Time: the median of `--repeats` loss + backward runs (after
a warm-up on one row; the first run is the one whose memory is read).

Labels: a share `--answer-fraction` of the positions carries a label (as contiguous answer spans, the rest -100).
The default 0.37 is the answer share of LLM positions at T=36 in `benchmarks.llava665k`'s LLaVA-665K-shaped
sample (answers and their end-of-turn tokens over text + T - 1 visual positions; see that module for which
parts of the distribution are published and which assumed). LLaVA-1.5 finetuning trains on answers only, so
the share is well under one; at T=576 it is 15%, at T=1 41%.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("old", "new")
REAL = {"vocab": 151936, "hidden": 1024, "batch": 16, "seq": 511}
TINY = {"vocab": 1024, "hidden": 64, "batch": 4, "seq": 64}
ANSWER_FRACTION = 0.37  # benchmarks.llava665k: answer share of LLM positions at T=36


def full_logits_loss(llm, hidden, labels):
    """The old path: logits at every position, then HF's causal-LM loss (kept for benchmarks and the GPU
    check; training uses LanguageModel.loss)."""
    logits = llm.logits(hidden)
    return llm.model.loss_function(logits=logits, labels=labels, vocab_size=logits.shape[-1])


def answer_labels(batch: int, seq: int, fraction: float, vocab: int, generator):
    """-100 everywhere but answer spans covering ``fraction`` of each row (1-3 spans a row, as multi-turn
    conversations have)."""
    import torch

    labels = torch.full((batch, seq), -100, dtype=torch.long)
    for row in range(batch):
        spans = int(torch.randint(1, 4, (1,), generator=generator))
        size = max(1, int(round(fraction * seq / spans)))
        for k in range(spans):
            start = min(seq - size, int((k + 0.5) * seq / spans - size / 2))
            labels[row, max(start, 1) : max(start, 1) + size] = torch.randint(
                0, vocab, (size,), generator=generator
            )
    return labels


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(variant: str, sizes: dict, fraction: float, repeats: int, device: str, seed: int = 0) -> dict:
    """Peak memory (bytes) and seconds of one variant's loss + backward, in this process."""
    import torch
    import transformers

    from vlmscale.models.llm import LanguageModel

    torch.manual_seed(seed)
    config = transformers.Qwen2Config(
        vocab_size=sizes["vocab"],
        hidden_size=sizes["hidden"],
        intermediate_size=sizes["hidden"],
        num_hidden_layers=1,
        num_attention_heads=max(1, sizes["hidden"] // 64),
        tie_word_embeddings=True,
    )
    with torch.device(device):
        llm = LanguageModel(transformers.Qwen2ForCausalLM(config))
    generator = torch.Generator().manual_seed(seed)
    hidden0 = torch.randn(sizes["batch"], sizes["seq"], sizes["hidden"], generator=generator).to(device)
    labels = answer_labels(sizes["batch"], sizes["seq"], fraction, sizes["vocab"], generator).to(device)
    cuda = device.startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    def run(rows: slice = slice(None)):
        hidden = hidden0[rows].clone().requires_grad_(True)
        llm.zero_grad(set_to_none=True)
        with autocast:
            if variant == "old":
                loss = full_logits_loss(llm, hidden, labels[rows])
            else:
                loss = llm.loss(hidden, labels[rows])
        loss.backward()
        return loss.detach(), hidden.grad

    run(slice(0, 1))  # warm-up on one row: allocator, kernels
    llm.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        before = _rss_kib("VmRSS") * 1024
    seconds = []
    for repeat in range(repeats):  # the first run is also the one whose peak memory is read
        start = time.perf_counter()
        loss, grad = run()
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        if repeat == 0:
            peak = (torch.cuda.max_memory_allocated() if cuda else _rss_kib("VmHWM") * 1024) - before
    answers = int((labels[:, 1:] != -100).sum())
    return {
        "variant": variant,
        "peak_bytes": peak,
        "seconds": statistics.median(seconds),
        "loss": float(loss),
        "grad_sample": grad.flatten()[:: max(1, grad.numel() // 4096)].float().cpu().tolist(),  # 4096 values
        "answer_positions": answers,
        "positions": sizes["batch"] * sizes["seq"],
    }


def run_variant(variant: str, args: argparse.Namespace, sizes: dict) -> dict:
    """One variant in a fresh process, so neither sees the other's memory."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "benchmarks.loss_memory", "--worker", variant, "--result", str(out)]
        cmd += ["--tiny"] if args.tiny else []
        cmd += ["--batch", str(args.batch)] if args.batch else []
        cmd += ["--answer-fraction", str(args.answer_fraction), "--repeats", str(args.repeats)]
        cmd += ["--device", args.device, "--threads", str(args.threads)]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(
                f"{variant} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
            )
        return json.loads(out.read_text())


def sizes_for(args: argparse.Namespace) -> dict:
    sizes = dict(TINY if args.tiny else REAL)
    if args.batch:
        sizes["batch"] = args.batch
    return sizes


def compare(args: argparse.Namespace) -> dict:
    sizes = sizes_for(args)
    results = {v: run_variant(v, args, sizes) for v in VARIANTS}
    old, new = results["old"], results["new"]
    grad_diff = max(abs(a - b) for a, b in zip(old["grad_sample"], new["grad_sample"]))
    grad_scale = max(abs(a) for a in old["grad_sample"])
    return {
        "sizes": sizes,
        "answer_fraction": args.answer_fraction,
        "old": old,
        "new": new,
        "peak_ratio": new["peak_bytes"] / old["peak_bytes"],
        "time_ratio": new["seconds"] / old["seconds"] if old["seconds"] else None,
        "loss_diff": abs(old["loss"] - new["loss"]),
        "grad_diff": grad_diff,
        "grad_scale": grad_scale,
    }


def report(result: dict, args: argparse.Namespace) -> None:
    s, old, new = result["sizes"], result["old"], result["new"]
    print(
        f"LM loss + backward, vocab {s['vocab']}, hidden {s['hidden']}, batch {s['batch']} x {s['seq']}, "
        f"{new['answer_positions']} of {new['positions']} positions with a label "
        f"({100 * new['answer_positions'] / new['positions']:.1f}%), {args.device}, {args.threads} thread(s)"
    )
    gib = 2**30
    for name, r in (("old (full logits)", old), ("new (answers only)", new)):
        print(
            f"  {name:<20} peak {r['peak_bytes'] / gib:7.3f} GiB   {r['seconds']:8.3f} s   loss {r['loss']:.7f}"
        )
    print(
        f"new/old: peak memory {result['peak_ratio']:.3f} (target <= 0.25), time {result['time_ratio']:.3f}; "
        f"|loss difference| {result['loss_diff']:.2e} (<= 1e-5), max |d hidden grad| {result['grad_diff']:.2e} "
        f"(of values up to {result['grad_scale']:.2e})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="vocab 1024, hidden 64, batch 4 x 64")
    parser.add_argument("--batch", type=int, help="rows (default 16, tiny 4)")
    parser.add_argument("--answer-fraction", type=float, default=ANSWER_FRACTION)
    parser.add_argument(
        "--repeats", type=int, default=1, help="timed runs per variant (after one measured run)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.worker:
        sizes = sizes_for(args)
        result = measure(args.worker, sizes, args.answer_fraction, args.repeats, args.device)
        Path(args.result).write_text(json.dumps(result))
        return 0
    result = compare(args)
    report(result, args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    ok = result["loss_diff"] <= 1e-5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
