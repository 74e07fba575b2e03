"""A LLaVA-665K-shaped sample of conversations: the record mix as published, the token lengths as assumed.

    python -m benchmarks.llava665k [--records 20000] [--visual-tokens 36]   # prints the assumed mix and its stats

LLaVA-1.5's finetuning file (llava_v1_5_mix665k.json) cannot be downloaded here, so benchmarks that need its
length distribution (`benchmarks.padding`, `benchmarks.loss_memory`) draw records from this model of it.

What is published (record counts): LLaVA-1.5 (Liu et al. 2023, "Improved Baselines with Visual Instruction
Tuning", arXiv 2310.03744, Table 7, the instruction-following data mixture): LLaVA-Instruct 158K, ShareGPT 40K
(the only text-only source; the file holds ~40K records without an image), VQAv2 83K, GQA 72K, OKVQA 9K,
OCR-VQA 80K, A-OKVQA 66K, TextCaps 22K, RefCOCO 48K, VG 86K (665K in all). LLaVA-Instruct-158K splits into 58K
conversations, 23K detailed descriptions and 77K complex-reasoning answers (LLaVA, Liu et al. 2023, arXiv
2304.08485, Sec. 3). The short-answer sources carry LLaVA-1.5's format prompts ("Answer the question using a
single word or phrase.", "Answer with the option's letter from the given choices directly.", ...), and the QA
pairs of one image are merged into one multi-turn record (LLaVA-1.5, Sec. 3.2 / appendix).

What is ASSUMED here (not measured; no copy of the data): turns per record and the token lengths of questions
and answers per source (the `SOURCES` table: uniform turn counts, log-normal question/answer lengths given by
their median and spread), from the sources' nature: one-word VQA answers, ~100-150-token GPT-4 descriptions and
reasoning, long multi-turn ShareGPT chats cut at LLaVA's 2048-token limit. Per turn 8 template tokens (Qwen's
chat markers), 20 system-prompt tokens per record. Change the table and every figure derived from it follows;
the benchmarks print the resulting statistics beside their results so the assumption is visible.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

TEMPLATE_PER_TURN = 8  # <|im_start|>user\n ... <|im_end|>\n<|im_start|>assistant\n ... <|im_end|>\n
SYSTEM_TOKENS = 20
MAX_LENGTH = 2048  # conf/data/llava_finetune.yaml max_length


@dataclass(frozen=True)
class Source:
    records: int  # published (LLaVA-1.5 Table 7; LLaVA-Instruct's split from the LLaVA paper)
    image: bool
    turns: tuple[int, int]  # assumed: uniform on [low, high]
    question: tuple[float, float]  # assumed: log-normal (median tokens, sigma), the format prompt included
    answer: tuple[float, float]  # assumed: log-normal (median tokens, sigma)


SOURCES = {
    "llava_conversation": Source(58_000, True, (1, 6), (12, 0.4), (45, 0.7)),
    "llava_detail": Source(23_000, True, (1, 1), (10, 0.2), (120, 0.3)),
    "llava_complex_reasoning": Source(77_000, True, (1, 1), (18, 0.4), (130, 0.4)),
    "sharegpt": Source(40_000, False, (1, 6), (50, 1.2), (250, 0.8)),
    "vqav2": Source(83_000, True, (1, 9), (18, 0.2), (1.5, 0.4)),
    "gqa": Source(72_000, True, (3, 20), (21, 0.2), (1.5, 0.4)),
    "okvqa": Source(9_000, True, (1, 2), (21, 0.2), (2, 0.5)),
    "ocrvqa": Source(80_000, True, (1, 9), (18, 0.2), (4, 0.8)),
    "aokvqa": Source(66_000, True, (1, 1), (40, 0.2), (1, 0.0)),
    "textcaps": Source(22_000, True, (1, 1), (12, 0.0), (14, 0.4)),
    "refcoco": Source(48_000, True, (1, 8), (30, 0.3), (8, 0.6)),
    "vg": Source(86_000, True, (2, 15), (30, 0.3), (8, 0.6)),
}


@dataclass
class Record:
    source: str
    image: bool
    turns: list[tuple[int, int]]  # (question tokens, answer tokens) per turn, the template not included

    @property
    def text_tokens(self) -> int:
        """Tokens of the whole conversation (system prompt, template, questions, answers), cut at MAX_LENGTH;
        the <image> placeholder not counted (it becomes T visual positions)."""
        total = SYSTEM_TOKENS + sum(q + a + TEMPLATE_PER_TURN for q, a in self.turns)
        return min(total, MAX_LENGTH)

    @property
    def answer_tokens(self) -> int:
        """Trained positions: every answer and its end-of-turn token (up to the cut)."""
        kept, position = 0, SYSTEM_TOKENS
        for q, a in self.turns:
            position += q + TEMPLATE_PER_TURN - 1
            kept += max(0, min(a + 1, MAX_LENGTH - position))
            position += a + 1
        return kept


def _lognormal(rng: np.random.Generator, median: float, sigma: float) -> int:
    return max(1, int(round(median * float(np.exp(sigma * rng.standard_normal())))))


def sample_records(count: int, seed: int = 0) -> list[Record]:
    """``count`` records in the published source proportions, lengths drawn from the assumed table."""
    rng = np.random.default_rng(seed)
    names = list(SOURCES)
    weights = np.array([SOURCES[n].records for n in names], dtype=float)
    picks = rng.choice(len(names), size=count, p=weights / weights.sum())
    records = []
    for pick in picks:
        source = SOURCES[names[pick]]
        turns = int(rng.integers(source.turns[0], source.turns[1] + 1))
        pairs = [(_lognormal(rng, *source.question), _lognormal(rng, *source.answer)) for _ in range(turns)]
        records.append(Record(names[pick], source.image, pairs))
    return records


def answer_fraction(records: list[Record], visual_tokens: int) -> float:
    """Share of an unpadded batch's LLM positions that carry a label (image rows: text + T - 1 positions)."""
    positions = sum(r.text_tokens + (visual_tokens - 1 if r.image else 0) for r in records)
    return sum(r.answer_tokens for r in records) / positions


def describe(records: list[Record], visual_tokens: int) -> str:
    lengths = np.array([r.text_tokens for r in records])
    text_only = sum(not r.image for r in records) / len(records)
    q50, q90, q99 = np.percentile(lengths, [50, 90, 99])
    return (
        f"LLaVA-665K-shaped sample ({len(records)} records, benchmarks/llava665k.py): text tokens mean "
        f"{lengths.mean():.0f}, median {q50:.0f}, p90 {q90:.0f}, p99 {q99:.0f}, max {lengths.max()}; "
        f"{100 * text_only:.1f}% text-only; answer share of positions at T={visual_tokens}: "
        f"{100 * answer_fraction(records, visual_tokens):.1f}%"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--visual-tokens", type=int, default=36)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    records = sample_records(args.records, args.seed)
    print(f"{'source':<24} {'records':>8} {'image':>5} {'turns':>7} {'question':>11} {'answer':>11}")
    for name, s in SOURCES.items():
        print(
            f"{name:<24} {s.records:>8} {str(s.image):>5} {s.turns[0]:>3}-{s.turns[1]:<3} "
            f"{s.question[0]:>5g} x{s.question[1]:<4g} {s.answer[0]:>5g} x{s.answer[1]:<4g}"
        )
    print(describe(records, args.visual_tokens))
    for t in (1, 36, 576):
        print(f"answer share of LLM positions at T={t}: {100 * answer_fraction(records, t):.1f}%")


if __name__ == "__main__":
    main()
