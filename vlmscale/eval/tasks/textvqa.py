"""TextVQA (val): VQA accuracy over the ten annotations, as LLaVA's ``m4c_evaluator.py`` scores it."""

from __future__ import annotations

import json

from .. import scorers
from .base import Benchmark, Sample, Task, open_question, simple_scorer

LAYOUT = """  TextVQA_0.5.1_val.json   {"data": [{"question_id", "image_id", "question", "answers": [10 strings]}]}
  train_images/<image_id>.jpg"""


def load(task: Task) -> list[Sample]:
    data = json.loads(task.file("TextVQA_0.5.1_val.json", "TextVQA*.json").read_text())["data"]
    images = task.path / "train_images"
    return [
        open_question(task, q["question_id"], images / f"{q['image_id']}.jpg", q["question"], q["answers"])
        for q in data
    ]


BENCHMARK = Benchmark(
    name="textvqa",
    loader=load,
    scorings={
        "official": simple_scorer(lambda pred, s: scorers.vqa_accuracy(pred, s.references)),
        "lenient": simple_scorer(lambda pred, s: scorers.vqa_accuracy_lenient(pred, s.references)),
    },
    category="ocr",
    layout=LAYOUT,
)
