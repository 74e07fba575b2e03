"""The embedded synthetic suite's test split as an evaluation task (exact match, split by record category).

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


def score(task: Task, samples: list[Sample], predictions: list[Any]):
    """The suite's own rule: exact match after `scorers.normalize_answer`; ``categories`` holds the error of
    each record category, ``error`` their mean (the same convention as ``error/avg``)."""
    by_cat: dict[str, list[float]] = defaultdict(list)
    by_family: dict[str, list[float]] = defaultdict(list)
    records, unparseable = [], 0
    for s, pred in zip(samples, predictions):
        parsed = is_answer(pred)
        unparseable += not parsed
        score = scorers.exact_match(pred, s.references) if parsed else 0.0
        category = task.meta(s, "category")
        by_cat[category].append(score)
        if s.meta.get("family"):
            by_family[s.meta["family"]].append(score)
        records.append(
            {"id": s.id, "prediction": pred, "score": score, "parsed": parsed, "category": category}
        )
    categories = {c: 1.0 - sum(v) / len(v) for c, v in sorted(by_cat.items())}
    n = len(samples)
    accuracy = sum(r["score"] for r in records) / n if n else 0.0
    metrics = {
        "accuracy": accuracy,
        "families": {f: sum(v) / len(v) for f, v in sorted(by_family.items())},
        "categories": categories,
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
