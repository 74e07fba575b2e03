"""MME: accuracy and accuracy+ per subtask, scored as MME's ``eval_tool/calculation.py`` does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import scorers
from .base import Benchmark, Sample, Scorer, Task, official_and_lenient, with_prompt
from .common import answer_records

LAYOUT = """  <subtask>/                      one folder per subtask (existence, count, ..., code_reasoning), either
    images/<name>.jpg|png          + questions_answers_YN/<name>.txt  ("question<TAB>Yes|No", one a line)
  or
    <name>.jpg|png + <name>.txt    side by side (the MME_Benchmark_release_version layout)"""

_IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def load(task: Task) -> list[Sample]:
    root = task.path
    subtasks = sorted(p for p in root.iterdir() if p.is_dir())
    if not subtasks:
        raise task._missing(f"subtask folders in {root}")
    samples = []
    for sub in subtasks:
        qa_dir = sub / "questions_answers_YN"
        image_dir = sub / "images" if qa_dir.is_dir() else sub
        txt_dir = qa_dir if qa_dir.is_dir() else sub
        images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in _IMAGE_EXTS}
        for txt in sorted(txt_dir.glob("*.txt")):
            if txt.stem not in images:
                continue
            lines = [ln for ln in txt.read_text().splitlines() if ln.strip()]
            for k, line in enumerate(lines):
                question, answer = line.rsplit("\t", 1)
                image = images[txt.stem]
                samples.append(
                    Sample(
                        id=f"{sub.name}/{image.name}/{k}",
                        image=str(image),
                        question=with_prompt(question, task.prompt),
                        references=[answer.strip().lower()],
                        meta={"subtask": sub.name, "image": image.name, "group": f"{sub.name}/{image.name}"},
                    )
                )
    return samples


def mme_scorer(parse: Callable[[Any], str | None]) -> Scorer:
    """See `scorers.mme_metrics`: error = 1 - (perception + cognition) / (200 x subtasks present)."""

    def scorer(task: Task, samples: list[Sample], predictions: list[Any]):
        keyed = [
            (task.meta(s, "subtask"), task.meta(s, "image"), p, s.references[0])
            for s, p in zip(samples, predictions)
        ]
        return scorers.mme_metrics(keyed, parse), answer_records(samples, predictions, parse)

    return scorer


BENCHMARK = Benchmark(
    name="mme",
    loader=load,
    scorings=official_and_lenient(mme_scorer, scorers.parse_mme_answer, scorers.parse_mme_answer_lenient),
    category="reasoning",
    layout=LAYOUT,
    max_new_tokens=8,
)
