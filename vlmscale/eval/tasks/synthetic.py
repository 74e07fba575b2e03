"""The embedded synthetic suite's test split as an evaluation task, scored per record category.

The suite's one rule (:func:`score_answer`): a reasoning answer is right or wrong (exact match after
`scorers.normalize_answer`); an OCR answer scores the fraction of its glyphs read correctly in their positions
(:func:`glyph_accuracy`), so a model that reads two of three glyphs counts as reading most of the line, as
DocVQA's ANLS gives partial credit. Exact match is reported beside it for every category
(``exact_categories``), and validation during training scores with the same rule.

The suite is written by `vlmscale.data.synthetic` in the LLaVA format; this reads it back by path only:
``<root>/<split>.json`` (records with ``id``, ``image`` relative to ``<root>/images``, ``conversations``
and ``category``) and the PNGs under ``<root>/images``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from .. import scorers
from .base import IMAGE_PLACEHOLDER, Benchmark, Sample, Task, is_answer, with_prompt

LAYOUT = """  <split>.json          LLaVA-format records: {"id", "image": "<split>/<n>.png", "category": "reasoning"|"ocr",
                         "conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": ...}]}
  images/<split>/<n>.png (the folder vlmscale.data.synthetic.ensure_synthetic returns)"""


def _first_turns(record: dict[str, Any]) -> tuple[str, str]:
    turns = record["conversations"]
    human = next(t["value"] for t in turns if t["from"] == "human")
    answer = next((t["value"] for t in turns if t["from"] == "gpt"), "")
    return human, answer


def load(task: Task) -> list[Sample]:
    split = task.options.get("split", "test")
    path = task.file(f"{split}.json")
    records = json.loads(path.read_text())
    images = task.path / "images"
    samples = []
    for rec in records:
        human, answer = _first_turns(rec)
        question = human.replace(IMAGE_PLACEHOLDER, "").strip()
        samples.append(
            Sample(
                id=str(rec["id"]),
                image=str(images / rec["image"]) if rec.get("image") else None,
                question=with_prompt(question, task.prompt),
                references=[answer],
                meta={"category": rec.get("category") or task.category, "family": rec.get("family", "")},
            )
        )
    return samples


def glyphs(text: Any) -> str:
    """The glyphs of an OCR answer: its characters without whitespace, upper-cased ("k c l" -> "KCL")."""
    return "".join(str(text).split()).upper()


def glyph_accuracy(pred: Any, reference: str) -> float:
    """The fraction of glyphs read correctly in their positions: matches at equal positions over the longer of
    the two strings, so a missing glyph and an extra one both cost (a line of three read as two right and one
    wrong scores 2/3; "KC" for "KCL" scores 2/3; "KCLL" scores 3/4)."""
    if not isinstance(pred, str):
        return 0.0
    said, truth = glyphs(pred), glyphs(reference)
    longest = max(len(said), len(truth))
    if longest == 0:
        return 1.0
    return sum(a == b for a, b in zip(said, truth)) / longest


def score_answer(pred: Any, reference: str, category: str) -> tuple[float, float]:
    """The suite's rule for one answer: ``(score, exact)``; score is `glyph_accuracy` for OCR answers and
    exact match otherwise (then both are the same number)."""
    exact = scorers.exact_match(pred, reference) if is_answer(pred) else 0.0
    if category == "ocr":
        return (glyph_accuracy(pred, reference) if is_answer(pred) else 0.0), exact
    return exact, exact


def score(task: Task, samples: list[Sample], predictions: list[Any]):
    """The suite's own rule (:func:`score_answer`); ``categories`` holds the error of each record category,
    ``error`` their mean (the same convention as ``error/avg``), ``exact_categories`` the exact-match errors."""
    by_cat: dict[str, list[float]] = defaultdict(list)
    exact_by_cat: dict[str, list[float]] = defaultdict(list)
    by_family: dict[str, list[float]] = defaultdict(list)
    records, unparseable = [], 0
    for s, pred in zip(samples, predictions):
        parsed = is_answer(pred)
        unparseable += not parsed
        category = task.meta(s, "category")
        score, exact = score_answer(pred, s.references[0], category)
        by_cat[category].append(score)
        exact_by_cat[category].append(exact)
        if s.meta.get("family"):
            by_family[s.meta["family"]].append(score)
        records.append(
            {
                "id": s.id,
                "prediction": pred,
                "score": score,
                "exact": exact,
                "parsed": parsed,
                "category": category,
            }
        )
    categories = {c: 1.0 - sum(v) / len(v) for c, v in sorted(by_cat.items())}
    n = len(samples)
    accuracy = sum(r["score"] for r in records) / n if n else 0.0
    metrics = {
        "accuracy": accuracy,
        "families": {f: sum(v) / len(v) for f, v in sorted(by_family.items())},
        "categories": categories,
        "exact_categories": {c: 1.0 - sum(v) / len(v) for c, v in sorted(exact_by_cat.items())},
        "error": sum(categories.values()) / len(categories) if categories else 1.0,
        "n": n,
        "n_unparseable": unparseable,
    }
    return metrics, records


# The suite is vlmscale's own benchmark: its rule is its official scoring.
BENCHMARK = Benchmark(
    name="synthetic",
    loader=load,
    scorings={"official": score},
    category="reasoning",  # per-record categories (reasoning / ocr) split this task's error
    layout=LAYOUT,
    prompt=None,
    max_new_tokens=8,
    options={"split": "test"},
)
