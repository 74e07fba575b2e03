"""The loss-memory and padding benchmarks: their claims at small sizes, and their command lines."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.llava665k import SOURCES, answer_fraction, sample_records
from benchmarks.loss_memory import TINY, measure
from vlmscale.data.module import GroupedBatchSampler, StepIndexedSampler, padding_fraction

REPO = Path(__file__).resolve().parents[1]


def test_llava665k_sample_follows_the_published_mix():
    records = sample_records(20_000, seed=1)
    text_only = sum(not r.image for r in records) / len(records)
    published = SOURCES["sharegpt"].records / sum(s.records for s in SOURCES.values())
    assert text_only == pytest.approx(published, abs=0.01)  # ~6% text-only (ShareGPT)
    assert 0.2 < answer_fraction(records, 36) < 0.6
    assert answer_fraction(records, 576) < answer_fraction(records, 36)  # visual positions carry no label


def test_grouping_cuts_padding_on_the_llava665k_shape_by_more_than_half():
    records = sample_records(8_000, seed=0)
    lengths = [r.text_tokens + (35 if r.image else 0) for r in records]  # LLM positions at T=36
    has_image = [r.image for r in records]
    grouped = GroupedBatchSampler(lengths, has_image, 16, 1, 8, seed=0)
    after = [
        m.tolist() for s in range(grouped.steps_per_epoch) for m in grouped.step_batch(s).reshape(-1, 16)
    ]
    stream = [i for i, _ in zip(StepIndexedSampler(len(records), seed=0), range(16 * len(after)))]
    before = [stream[i : i + 16] for i in range(0, len(stream), 16)]
    assert padding_fraction(before, lengths) >= 2 * padding_fraction(after, lengths)


def test_answer_only_loss_matches_full_logits_at_tiny_shape():
    old = measure("old", TINY, 0.37, repeats=1, device="cpu")
    new = measure("new", TINY, 0.37, repeats=1, device="cpu")
    assert old["answer_positions"] == new["answer_positions"] > 0
    assert abs(old["loss"] - new["loss"]) < 1e-5
    assert max(abs(a - b) for a, b in zip(old["grad_sample"], new["grad_sample"])) < 1e-6


@pytest.mark.parametrize("name", ["loss_memory", "padding", "llava665k", "train_overhead"])
def test_benchmarks_have_a_help_page(name):
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr
