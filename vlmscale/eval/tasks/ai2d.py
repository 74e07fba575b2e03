"""AI2D (test parquet): multiple choice, VLMEvalKit's exact matching by default."""

from __future__ import annotations

from typing import Any

from .base import Sample, Task, image_bytes
from .common import as_list, choice_benchmark, choice_question, read_parquets

LAYOUT = """  **/*.parquet   columns: question, options (list of strings), answer (option index or letter),
                 image ({"bytes": ...}), as in the lmms-lab/ai2d release"""


def answer_letter(answer: Any, n_options: int) -> str:
    answer = str(answer).strip()
    if answer.isdigit() and int(answer) < n_options:
        return chr(ord("A") + int(answer))
    return answer.upper()


def load(task: Task) -> list[Sample]:
    df = read_parquets(task)
    samples = []
    for i, row in df.iterrows():
        options = as_list(row["options"])
        samples.append(
            Sample(
                id=str(row["question_id"]) if "question_id" in row else str(i),
                image=image_bytes(row["image"]),
                question=choice_question(str(row["question"]), options, task.prompt),
                references=[answer_letter(row["answer"], len(options))],
                options=options,
            )
        )
    return samples


BENCHMARK = choice_benchmark("ai2d", load, LAYOUT)
