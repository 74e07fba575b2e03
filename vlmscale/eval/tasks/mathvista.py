"""MathVista (testmini parquet): rule-based answer matching. The official evaluation extracts answers with an
LLM, so there is no ``official`` scoring here: ``rules`` uses the option-letter extraction for multiple
choice, the first number (at the question's precision) or the normalised text for free-form answers."""

from __future__ import annotations

import re
from typing import Any

from .. import scorers
from .base import (
    OPTION_LETTER_PROMPT,
    SHORT_ANSWER_PROMPT,
    Benchmark,
    Sample,
    Task,
    image_bytes,
    is_answer,
    with_prompt,
)
from .common import choice_question, is_missing, mean, read_parquets

LAYOUT = """  **/testmini-*.parquet   columns: pid, question, decoded_image ({"bytes": ...}) or image (path relative to
                          the task folder), choices (list or null), answer, question_type ("multi_choice"|
                          "free_form"), answer_type ("integer"|"float"|"text"|"list"), precision, as in AI4Math/MathVista"""

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def first_number(text: Any) -> float | None:
    """The first number written in ``text`` ("about 1,234.5 m" -> 1234.5), or None."""
    m = _NUMBER.search(text) if isinstance(text, str) else None
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", ""))
    except ValueError:
        return None


def load(task: Task) -> list[Sample]:
    df = read_parquets(task, task.options.get("pattern", "**/testmini-*.parquet"))
    samples = []
    for i, row in df.iterrows():
        choices = row.get("choices")
        choices = [] if choices is None or is_missing(choices) else [str(c) for c in list(choices)]
        image = image_bytes(row.get("decoded_image"))
        if image is None and isinstance(row.get("image"), str):
            image = str(task.path / row["image"])
        answer = str(row["answer"])
        meta = {
            "answer_type": str(row.get("answer_type", "text")),
            "precision": None if is_missing(row.get("precision")) else int(float(row["precision"])),
        }
        if row.get("question_type") == "multi_choice" and choices:
            ref = chr(ord("A") + choices.index(answer)) if answer in choices else answer
            question, options = choice_question(str(row["question"]), choices, task.prompt), choices
        else:
            open_prompt = task.options.get("open_prompt", SHORT_ANSWER_PROMPT)
            ref, question, options = answer, with_prompt(str(row["question"]), open_prompt), None
        samples.append(
            Sample(
                id=str(row.get("pid", i)),
                image=image,
                question=question,
                references=[ref],
                options=options,
                meta=meta,
            )
        )
    return samples


def _free_form(pred: Any, sample: Sample) -> float | None:
    kind = sample.meta.get("answer_type", "text")
    if kind in ("integer", "float"):
        value = first_number(pred)
        if value is None:
            return None
        target = float(sample.references[0])
        if kind == "integer":
            return float(round(value) == round(target) and abs(value - round(value)) < 1e-9)
        digits = sample.meta.get("precision") or 0
        return float(round(value, digits) == round(target, digits))
    return scorers.exact_match(pred, sample.references) if is_answer(pred) else None


def score_rules(task: Task, samples: list[Sample], predictions: list[Any]):
    """Multiple choice: option letter (or the option's text); free form: numbers at the given precision,
    text by exact match. error = 1 - accuracy."""
    records, unparseable = [], 0
    for sample, pred in zip(samples, predictions):
        if sample.options:
            letter = scorers.extract_option_letter(pred, sample.options)
            value = None if letter is None else float(letter == sample.references[0])
        else:
            value = _free_form(pred, sample)
        parsed = value is not None
        unparseable += not parsed
        records.append({"id": sample.id, "prediction": pred, "score": value or 0.0, "parsed": parsed})
    accuracy = mean([r["score"] for r in records])
    return {
        "accuracy": accuracy,
        "error": 1.0 - accuracy,
        "n": len(records),
        "n_unparseable": unparseable,
    }, records


BENCHMARK = Benchmark(
    name="mathvista",
    loader=load,
    scorings={"rules": score_rules},
    default_scoring="rules",
    category="reasoning",
    layout=LAYOUT,
    prompt=OPTION_LETTER_PROMPT,
    max_new_tokens=16,
)
