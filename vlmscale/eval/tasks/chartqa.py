"""ChartQA (test: human + augmented): relaxed accuracy as pix2struct / lmms-eval compute it."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .. import scorers
from .base import Benchmark, Sample, Scorer, Task, official_and_lenient, simple_scorer, with_prompt
from .common import mean

LAYOUT = """  test_human.json, test_augmented.json   [{"imgname", "query", "label"}]  (also accepted under test/)
  png/<imgname>                          (or test/png/<imgname>)"""


def load(task: Task) -> list[Sample]:
    samples = []
    for split in task.options.get("splits", ["human", "augmented"]):
        path = task.file(f"test_{split}.json", f"test/test_{split}.json")
        images = path.parent / "png"
        for k, q in enumerate(json.loads(path.read_text())):
            samples.append(
                Sample(
                    id=f"{split}/{k}",
                    image=str(images / q["imgname"]),
                    question=with_prompt(q["query"], task.prompt),
                    references=[str(q["label"])],
                    meta={"split": split},
                )
            )
    return samples


def chartqa_scorer(relaxed: Callable[[Any, str], float]) -> Scorer:
    """Relaxed accuracy over all questions (and per split); error = 1 - overall relaxed accuracy."""
    score_all = simple_scorer(lambda pred, s: relaxed(pred, s.references[0]), name="relaxed_accuracy")

    def scorer(task: Task, samples: list[Sample], predictions: list[Any]):
        metrics, records = score_all(task, samples, predictions)
        by_split: dict[str, list[float]] = defaultdict(list)
        for s, r in zip(samples, records):
            by_split[s.meta.get("split", "all")].append(r["score"])
        metrics["splits"] = {k: mean(v) for k, v in by_split.items()}
        return metrics, records

    return scorer


BENCHMARK = Benchmark(
    name="chartqa",
    loader=load,
    scorings=official_and_lenient(chartqa_scorer, scorers.relaxed_accuracy, scorers.relaxed_accuracy_lenient),
    category="reasoning",  # the paper counts ChartQA in its visual-reasoning average
    layout=LAYOUT,
)
