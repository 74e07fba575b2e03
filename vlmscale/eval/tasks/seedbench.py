"""SEED-Bench (image questions): multiple choice, VLMEvalKit's exact matching by default."""

from __future__ import annotations

import json

from .base import Sample, Task
from .common import choice_benchmark, choice_question

LAYOUT = """  SEED-Bench.json        {"questions": [{"question_id", "question", "choice_a".."choice_d", "answer": "A".."D",
                                          "data_type": "image"|"video", "data_id": "<file>"}]}
  SEED-Bench-image/<data_id>"""


def load(task: Task) -> list[Sample]:
    data = json.loads(task.file("SEED-Bench.json", "SEED-Bench*.json").read_text())
    images = task.path / "SEED-Bench-image"
    samples = []
    for q in data["questions"]:
        if q.get("data_type", "image") != "image":
            continue  # video questions need several frames
        options = [str(q[f"choice_{c}"]) for c in "abcd" if f"choice_{c}" in q]
        samples.append(
            Sample(
                id=str(q["question_id"]),
                image=str(images / q["data_id"]),
                question=choice_question(q["question"], options, task.prompt),
                references=[str(q["answer"]).strip()],
                options=options,
                meta={"question_type_id": q.get("question_type_id")},
            )
        )
    return samples


BENCHMARK = choice_benchmark("seedbench", load, LAYOUT)
