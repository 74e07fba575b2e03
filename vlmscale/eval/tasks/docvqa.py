"""DocVQA (val): ANLS as the RRC evaluation / lmms-eval compute it (`scorers.anls`)."""

from __future__ import annotations

import json

from .. import scorers
from .base import Benchmark, Sample, Task, open_question, simple_scorer

LAYOUT = """  val_v1.0.json (or val_v1.0_withQT.json)   {"data": [{"questionId", "question", "image": "documents/<f>.png",
                                              "answers": [...]}]}
  documents/<f>.png                         (the "image" path, relative to the task folder)"""


def load(task: Task) -> list[Sample]:
    data = json.loads(task.file("val_v1.0.json", "val_v1.0_withQT.json", "val*.json").read_text())["data"]
    return [
        open_question(task, q["questionId"], task.path / q["image"], q["question"], q["answers"])
        for q in data
    ]


BENCHMARK = Benchmark(
    name="docvqa",
    loader=load,
    scorings={"official": simple_scorer(lambda pred, s: scorers.anls(pred, s.references), name="anls")},
    category="ocr",
    layout=LAYOUT,
    max_new_tokens=32,
)
