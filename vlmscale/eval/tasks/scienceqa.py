"""ScienceQA-IMG (test, questions with an image): answers read as LLaVA's ``eval_science_qa.py`` does."""

from __future__ import annotations

import json
from typing import Any

from .. import scorers
from .base import Sample, Task
from .common import choice_benchmark, choice_question, choice_scorer, lenient_letter

LAYOUT = """  problems.json      {pid: {"question", "choices": [...], "answer": <index>, "hint", "image": "image.png"|null, "split"}}
  pid_splits.json    {"test": [pid, ...], ...}   (optional: falls back to each problem's "split")
  images/test/<pid>/image.png"""


def load(task: Task) -> list[Sample]:
    problems = json.loads(task.file("problems.json").read_text())
    split = task.options.get("split", "test")
    splits_path = task.path / "pid_splits.json"
    pids = (
        json.loads(splits_path.read_text())[split]
        if splits_path.exists()
        else [pid for pid, p in problems.items() if p.get("split") == split]
    )
    samples = []
    for pid in pids:
        p = problems[str(pid)]
        if not p.get("image"):
            continue  # ScienceQA-IMG: only the questions with an image
        options = [str(c) for c in p["choices"]]
        hint = str(p.get("hint") or "").strip()
        question = p["question"] + (f"\nContext: {hint}" if hint else "")
        samples.append(
            Sample(
                id=str(pid),
                image=str(task.path / "images" / split / str(pid) / p["image"]),
                question=choice_question(question, options, task.prompt),
                references=[chr(ord("A") + int(p["answer"]))],
                options=options,
            )
        )
    return samples


def official_letter(pred: Any, sample: Sample) -> str | None:
    return scorers.scienceqa_letter(pred, len(sample.options or []))


BENCHMARK = choice_benchmark(
    "scienceqa",
    load,
    LAYOUT,
    scorings={"official": choice_scorer(official_letter), "lenient": choice_scorer(lenient_letter)},
)
