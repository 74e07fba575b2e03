"""The synthetic suite's scoring rule: exact match for reasoning, the fraction of glyphs read in place for OCR."""

import pytest

from vlmscale.eval.runner import summarize
from vlmscale.eval.tasks import build_task
from vlmscale.eval.tasks.synthetic import glyph_accuracy, score_answer


@pytest.mark.parametrize(
    ("pred", "reference", "expected"),
    [
        ("K C L", "K C L", 1.0),  # the suite's answer format
        ("KCL", "K C L", 1.0),  # spacing is not a glyph
        ("k c l", "K C L", 1.0),  # nor is case
        ("K C X", "K C L", 2 / 3),  # one glyph wrong
        ("X C L", "K C L", 2 / 3),
        ("C L", "K C L", 0.0),  # a skipped first glyph shifts the rest out of place
        ("K C", "K C L", 2 / 3),  # a missing glyph costs its share
        ("K C L L", "K C L", 3 / 4),  # so does an extra one (over the longer string)
        ("L C K", "K C L", 1 / 3),  # order matters: only the middle glyph is in place
        ("", "K C L", 0.0),
        (None, "K C L", 0.0),  # not text: nothing read
    ],
)
def test_glyph_accuracy_hand_cases(pred, reference, expected):
    assert glyph_accuracy(pred, reference) == pytest.approx(expected)


def test_score_answer_per_category():
    # OCR: partial credit, exact match beside it
    assert score_answer("K C X", "K C L", "ocr") == (pytest.approx(2 / 3), 0.0)
    assert score_answer("K C L", "K C L", "ocr") == (1.0, 1.0)
    assert score_answer("   ", "K C L", "ocr") == (0.0, 0.0)  # unparseable
    # reasoning (and anything else): right or wrong, after the lenient normalisation
    assert score_answer("Two.", "two", "reasoning") == (1.0, 1.0)
    assert score_answer("red blue", "red", "reasoning") == (0.0, 0.0)
    assert score_answer("yes", "yes", "") == (1.0, 1.0)


def test_task_reports_glyph_error_and_exact_error(bench_root):
    task = build_task("synthetic", root=bench_root / "synthetic")
    samples = task.load()
    # the fixture's OCR answer is "AB3": two of its three glyphs read in place
    metrics, records = task.score(samples, ["red", "two", "AB7", "no"])
    assert metrics["categories"]["ocr"] == pytest.approx(1 / 3)
    assert metrics["exact_categories"]["ocr"] == 1.0
    assert metrics["categories"]["reasoning"] == pytest.approx(1 / 3)  # "no" for "yes"
    assert metrics["exact_categories"]["reasoning"] == pytest.approx(1 / 3)
    ocr = next(r for r in records if r["category"] == "ocr")
    assert ocr["score"] == pytest.approx(2 / 3) and ocr["exact"] == 0.0
    summary = summarize({"synthetic": metrics})
    assert summary["error/ocr"] == pytest.approx(1 / 3)
    assert summary["exact_error/ocr"] == 1.0
    assert summary["error/avg"] == pytest.approx((1 / 3 + 1 / 3) / 2)
