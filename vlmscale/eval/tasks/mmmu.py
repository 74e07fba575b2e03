"""MMMU (validation parquets): multiple choice by VLMEvalKit's exact matching by default; open questions by
lenient exact match in both scorings (the official open-question rule uses an LLM judge)."""

from __future__ import annotations

import re

from .base import SHORT_ANSWER_PROMPT, Sample, Task, image_bytes, with_prompt
from .common import as_list, choice_benchmark, choice_question, read_parquets

LAYOUT = """  **/*.parquet   columns: id, question, options (list or its string form), answer, question_type
                 ("multiple-choice"|"open"), image_1..image_7 ({"bytes": ...}), as in the MMMU/MMMU release
                 (e.g. <Subject>/validation-*.parquet). Only image_1 is shown to the model."""

_IMAGE_REF = re.compile(r"<image (\d+)>")


def load(task: Task) -> list[Sample]:
    df = read_parquets(task, task.options.get("pattern", "**/validation-*.parquet"))
    samples = []
    for i, row in df.iterrows():
        options = [_IMAGE_REF.sub(r"image \1", o) for o in as_list(row.get("options", "[]"))]
        question = _IMAGE_REF.sub(r"image \1", str(row["question"]))
        multiple_choice = row.get("question_type", "multiple-choice") == "multiple-choice" and options
        if multiple_choice:
            text = choice_question(question, options, task.prompt)
            refs = [str(row["answer"]).strip()]
        else:
            text = with_prompt(question, task.options.get("open_prompt", SHORT_ANSWER_PROMPT))
            answer = row["answer"]
            refs = as_list(answer) if str(answer).strip().startswith("[") else [str(answer)]
        samples.append(
            Sample(
                id=str(row.get("id", i)),
                image=image_bytes(row.get("image_1")),
                question=text,
                references=refs,
                options=options if multiple_choice else None,
                meta={"subfield": str(row.get("subfield", ""))},
            )
        )
    return samples


BENCHMARK = choice_benchmark("mmmu", load, LAYOUT, max_new_tokens=16)
