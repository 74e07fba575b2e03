"""Loader and scorer helpers several benchmarks share (multiple-choice prompts and scoring, parquet files)."""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any

from .. import scorers
from .base import (
    OPTION_LETTER_PROMPT,
    Benchmark,
    Loader,
    Sample,
    Scorer,
    Task,
    format_options,
    is_answer,
    official_and_lenient,
    with_prompt,
)


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "nan", "none")


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def read_parquets(task: Task, pattern: str = "**/*.parquet"):
    import pandas as pd

    files = sorted(p for p in task.path.glob(pattern) if p.is_file())
    if not files:
        raise task._missing(f"{pattern} in {task.path}")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def as_list(value: Any) -> list[str]:
    """A list of strings from a list, its string form ("['a', 'b']") or a single string."""
    if isinstance(value, str):
        value = ast.literal_eval(value) if value.strip().startswith("[") else [value]
    return [str(v) for v in list(value)]


def choice_question(question: str, options: list[str], prompt: str | None, hint: str | None = None) -> str:
    text = question.strip()
    if hint:
        text = f"{hint.strip()}\n{text}"
    return with_prompt(f"{text}\n{format_options(options)}", prompt)


LetterRule = Callable[[Any, Sample], "str | None"]


def official_letter(pred: Any, sample: Sample) -> str | None:
    """VLMEvalKit's exact matching (`scorers.mmbench_letter`)."""
    return scorers.mmbench_letter(pred, sample.options or [])


def lenient_letter(pred: Any, sample: Sample) -> str | None:
    return scorers.extract_option_letter(pred, sample.options)


def choice_scorer(
    letter_of: LetterRule, open_match: Callable[[Any, list[str]], float] = scorers.exact_match
) -> Scorer:
    """Multiple choice: the letter ``letter_of`` reads must equal the reference letter; questions without
    options (MMMU's open ones) use ``open_match``. With ``options['circular']`` the error is the circular
    accuracy's (every pass of a ``meta['group']`` right)."""

    def scorer(task: Task, samples: list[Sample], predictions: list[Any]):
        records, unparseable = [], 0
        for sample, pred in zip(samples, predictions):
            if sample.options:
                letter = letter_of(pred, sample)
                parsed = letter is not None
                correct = float(parsed and letter == sample.references[0])
            else:
                letter = None
                parsed = is_answer(pred)
                correct = open_match(pred, sample.references)
            unparseable += not parsed
            records.append(
                {
                    "id": sample.id,
                    "prediction": pred,
                    "extracted": letter,
                    "reference": sample.references[0],
                    "score": correct,
                    "parsed": parsed,
                    "group": sample.meta.get("group", sample.id),
                }
            )
        accuracy = mean([r["score"] for r in records])
        metrics: dict[str, Any] = {"accuracy": accuracy, "n": len(records), "n_unparseable": unparseable}
        if task.options.get("circular"):
            circ = scorers.circular_accuracy((r["group"], r["score"] == 1.0) for r in records)
            first_pass = [r["score"] for s, r in zip(samples, records) if s.meta.get("circular_pass", 0) == 0]
            metrics.update(
                circular_accuracy=circ["accuracy"],
                n_questions=circ["n_questions"],
                single_pass_accuracy=mean(first_pass),
            )
            metrics["error"] = 1.0 - circ["accuracy"]
        else:
            metrics["error"] = 1.0 - accuracy
        return metrics, records

    return scorer


def choice_scorings(official: LetterRule = official_letter) -> dict[str, Scorer]:
    """The two scorings of a multiple-choice benchmark: ``official`` with ``official``'s letter rule,
    ``lenient`` with vlmscale's `scorers.extract_option_letter`."""
    return official_and_lenient(choice_scorer, official, lenient_letter)


def choice_benchmark(name: str, loader: Loader, layout: str, **declared: Any) -> Benchmark:
    """A multiple-choice benchmark's declaration: reasoning category, option-letter prompt, 8 new tokens
    and `choice_scorings`, unless ``declared`` says otherwise."""
    defaults = {"category": "reasoning", "prompt": OPTION_LETTER_PROMPT, "max_new_tokens": 8}
    declared.setdefault("scorings", choice_scorings())
    return Benchmark(name=name, loader=loader, layout=layout, **{**defaults, **declared})


def answer_records(
    samples: list[Sample], predictions: list[Any], parse: Callable[[Any], str | None]
) -> list[dict]:
    """Per-question records of a benchmark whose answers are parsed into a label (yes / no)."""
    records = []
    for sample, pred in zip(samples, predictions):
        answer = parse(pred)
        records.append(
            {
                "id": sample.id,
                "prediction": pred,
                "extracted": answer,
                "score": float(answer == sample.references[0]),
                "parsed": answer is not None,
            }
        )
    return records
