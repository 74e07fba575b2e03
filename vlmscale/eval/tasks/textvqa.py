"""TextVQA (val): VQA accuracy over the ten annotations, as LLaVA's ``m4c_evaluator.py`` scores it."""

from __future__ import annotations

import json

from .. import scorers
from .base import Benchmark, Sample, Task, simple_scorer, with_prompt

LAYOUT = """  TextVQA_0.5.1_val.json   {"data": [{"question_id", "image_id", "question", "answers": [10 strings]}]}
  train_images/<image_id>.jpg"""


def load(task: Task) -> list[Sample]:
    data = json.loads(task.file("TextVQA_0.5.1_val.json", "TextVQA*.json").read_text())["data"]
    images = task.path / "train_images"
    return [
        Sample(
            id=str(q["question_id"]),
            image=str(images / f"{q['image_id']}.jpg"),
            question=with_prompt(q["question"], task.prompt),
            references=[str(a) for a in q["answers"]],
        )
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
