"""POPE (random / popular / adversarial): yes/no metrics per split, as LLaVA's ``eval_pope.py`` reads
answers (`scorers.parse_yes_no`); error = 1 - mean accuracy over the splits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .. import scorers
from .base import Benchmark, Sample, Scorer, Task, official_and_lenient, read_jsonl, with_prompt
from .common import answer_records, mean

LAYOUT = """  coco_pope_{random,popular,adversarial}.json   one JSON object a line: {"question_id", "image", "text", "label": "yes"|"no"}
                                                 (also accepted under coco/, as in LLaVA's playground)
  val2014/<image>                                 COCO val2014 images"""


def load(task: Task) -> list[Sample]:
    samples = []
    for split in task.options.get("splits", ["adversarial", "popular", "random"]):
        path = task.file(f"coco_pope_{split}.json", f"coco/coco_pope_{split}.json")
        images = task.path / "val2014"
        for q in read_jsonl(path):
            samples.append(
                Sample(
                    id=f"{split}/{q['question_id']}",
                    image=str(images / q["image"]),
                    question=with_prompt(q["text"], task.prompt),
                    references=[str(q["label"]).lower()],
                    meta={"split": split},
                )
            )
    return samples


def pope_scorer(parse: Callable[[Any], str | None]) -> Scorer:
    def scorer(task: Task, samples: list[Sample], predictions: list[Any]):
        by_split: dict[str, tuple[list[Any], list[str]]] = defaultdict(lambda: ([], []))
        for sample, pred in zip(samples, predictions):
            preds, labels = by_split[task.meta(sample, "split")]
            preds.append(pred)
            labels.append(sample.references[0])
        splits = {split: scorers.pope_metrics(p, lab, parse) for split, (p, lab) in by_split.items()}
        metrics: dict[str, Any] = {"splits": splits}
        for key in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
            metrics[key] = mean([m[key] for m in splits.values()])
        metrics["n"] = len(samples)
        metrics["n_unparseable"] = sum(m["n_unparseable"] for m in splits.values())
        metrics["error"] = 1.0 - metrics["accuracy"]
        return metrics, answer_records(samples, predictions, parse)

    return scorer


BENCHMARK = Benchmark(
    name="pope",
    loader=load,
    scorings=official_and_lenient(pope_scorer, scorers.parse_yes_no, scorers.parse_yes_no_lenient),
    category="reasoning",
    layout=LAYOUT,
    max_new_tokens=8,
    options={"splits": ["adversarial", "popular", "random"]},
)
