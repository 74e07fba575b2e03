"""GQA (testdev-balanced): exact match as LLaVA's conversion + GQA's eval score it (`scorers.gqa_match`)."""

from __future__ import annotations

import json

from .. import scorers
from .base import Benchmark, Sample, Task, open_question, simple_scorer

LAYOUT = """  testdev_balanced_questions.json   official GQA questions: {qid: {"imageId", "question", "answer", ...}}
  images/<imageId>.jpg"""


def load(task: Task) -> list[Sample]:
    questions = json.loads(task.file("testdev_balanced_questions.json", "*questions*.json").read_text())
    images = task.path / "images"
    return [
        open_question(task, qid, images / f"{q['imageId']}.jpg", q["question"], [q["answer"]])
        for qid, q in questions.items()
    ]


BENCHMARK = Benchmark(
    name="gqa",
    loader=load,
    scorings={
        "official": simple_scorer(lambda pred, s: scorers.gqa_match(pred, s.references[0])),
        "lenient": simple_scorer(lambda pred, s: scorers.exact_match(pred, s.references)),
    },
    category="reasoning",
    layout=LAYOUT,
)
