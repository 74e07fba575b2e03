"""OCRBench: an answer occurring in the prediction, by the original MultimodalOCR rules; ``ocrbench_score``
counts the right answers (out of 1000 on the full set)."""

from __future__ import annotations

import json
from typing import Any

from .. import scorers
from .base import Benchmark, Sample, Task, simple_scorer, with_prompt

LAYOUT = """  OCRBench.json   [{"id", "dataset_name", "question", "answers": str|[str], "image_path", "type"}]
  OCRBench_Images/...   image_path is resolved against the task folder, then against OCRBench_Images/"""


def load(task: Task) -> list[Sample]:
    data = json.loads(task.file("OCRBench.json", "*.json").read_text())
    samples = []
    for k, q in enumerate(data):
        rel = str(q["image_path"]).lstrip("./")
        image = task.path / rel
        if not image.exists():
            image = task.path / "OCRBench_Images" / rel
        answers = q["answers"] if isinstance(q["answers"], list) else [q["answers"]]
        samples.append(
            Sample(
                id=str(q.get("id", k)),
                image=str(image),
                question=with_prompt(q["question"], task.prompt),
                references=[str(a) for a in answers],
                meta={"dataset_name": q.get("dataset_name", ""), "type": q.get("type", "")},
            )
        )
    return samples


_score_all = simple_scorer(
    lambda pred, s: scorers.ocrbench_match(pred, s.references, s.meta.get("dataset_name", "")),
    name="accuracy",
)


def score(task: Task, samples: list[Sample], predictions: list[Any]):
    metrics, records = _score_all(task, samples, predictions)
    metrics["ocrbench_score"] = sum(r["score"] for r in records)  # out of len(samples)
    return metrics, records


BENCHMARK = Benchmark(
    name="ocrbench",
    loader=load,
    scorings={"official": score},
    category="ocr",
    layout=LAYOUT,
    prompt=None,
    max_new_tokens=64,
)
