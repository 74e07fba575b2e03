"""The task registry: every benchmark with its category, answer prompt, generation length, loader and scorer.

``build_task(name, root=..., category=..., ...)`` makes a runnable `Task`; any field can be overridden from the
config (``conf/eval/default.yaml``: ``eval.catalog.<name>``). A task's folder defaults to
``$VLMSCALE_EVAL_DIR/<subdir>``.

Categories follow the paper: its visual-reasoning average (MME, GQA, AI2D, MMBench, MMMU, ScienceQA,
MathVista, POPE, ChartQA, + SEED-Bench here) and the OCR-like tasks (TextVQA, DocVQA, OCRBench), where the trend reverses.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import benchmarks as b
from .base import (
    CATEGORIES,
    EVAL_DIR_ENV,
    OPTION_LETTER_PROMPT,
    SHORT_ANSWER_PROMPT,
    BenchmarkNotFoundError,
    Loader,
    Sample,
    Scorer,
    Task,
    limit_samples,
    open_image,
)
from .synthetic import LAYOUT_SYNTHETIC, load_synthetic, score_synthetic


@dataclass(frozen=True)
class TaskSpec:
    loader: Loader
    scorer: Scorer
    category: str
    layout: str
    prompt: str | None = SHORT_ANSWER_PROMPT
    max_new_tokens: int = 16
    subdir: str = ""
    options: dict[str, Any] = field(default_factory=dict)


TASKS: dict[str, TaskSpec] = {
    "synthetic": TaskSpec(
        load_synthetic, score_synthetic, "reasoning", LAYOUT_SYNTHETIC, prompt=None, max_new_tokens=8
    ),
    "gqa": TaskSpec(b.load_gqa, b.score_gqa, "reasoning", b.LAYOUT_GQA),
    "textvqa": TaskSpec(b.load_textvqa, b.score_textvqa, "ocr", b.LAYOUT_TEXTVQA),
    "pope": TaskSpec(b.load_pope, b.score_pope, "reasoning", b.LAYOUT_POPE, max_new_tokens=8),
    "mme": TaskSpec(b.load_mme, b.score_mme, "reasoning", b.LAYOUT_MME, max_new_tokens=8),
    "mmbench": TaskSpec(
        b.load_mmbench,
        b.choice_scorer,
        "reasoning",
        b.LAYOUT_MMBENCH,
        prompt=OPTION_LETTER_PROMPT,
        max_new_tokens=8,
        options={"circular": True},
    ),
    "scienceqa": TaskSpec(
        b.load_scienceqa, b.choice_scorer, "reasoning", b.LAYOUT_SCIENCEQA, OPTION_LETTER_PROMPT, 8
    ),
    "seedbench": TaskSpec(
        b.load_seedbench, b.choice_scorer, "reasoning", b.LAYOUT_SEEDBENCH, OPTION_LETTER_PROMPT, 8
    ),
    "ai2d": TaskSpec(b.load_ai2d, b.choice_scorer, "reasoning", b.LAYOUT_AI2D, OPTION_LETTER_PROMPT, 8),
    "mmmu": TaskSpec(b.load_mmmu, b.choice_scorer, "reasoning", b.LAYOUT_MMMU, OPTION_LETTER_PROMPT, 16),
    "mathvista": TaskSpec(
        b.load_mathvista, b.score_mathvista, "reasoning", b.LAYOUT_MATHVISTA, OPTION_LETTER_PROMPT, 16
    ),
    "chartqa": TaskSpec(b.load_chartqa, b.score_chartqa, "reasoning", b.LAYOUT_CHARTQA),
    "docvqa": TaskSpec(b.load_docvqa, b.score_docvqa, "ocr", b.LAYOUT_DOCVQA, max_new_tokens=32),
    "ocrbench": TaskSpec(
        b.load_ocrbench, b.score_ocrbench, "ocr", b.LAYOUT_OCRBENCH, prompt=None, max_new_tokens=64
    ),
}


def default_root(name: str) -> str | None:
    """``$VLMSCALE_EVAL_DIR/<subdir or name>`` when the variable is set, else None."""
    base = os.environ.get(EVAL_DIR_ENV)
    if not base:
        return None
    return str(Path(base) / (TASKS[name].subdir or name))


def build_task(name: str, root: str | Path | None = None, **overrides: Any) -> Task:
    """A runnable task; ``overrides`` may set category, prompt, max_new_tokens and loader/scorer options
    (any other key is passed into ``Task.options``)."""
    if name not in TASKS:
        raise KeyError(f"unknown eval task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    spec = TASKS[name]
    fields = {"category", "prompt", "max_new_tokens", "config_key"}
    known = {k: v for k, v in overrides.items() if k in fields}
    options = {**spec.options, **(overrides.get("options") or {})}
    options.update({k: v for k, v in overrides.items() if k not in fields and k not in ("options", "subdir")})
    return Task(
        name=name,
        category=known.get("category", spec.category),
        root=root if root is not None else default_root(name),
        loader=spec.loader,
        scorer=spec.scorer,
        prompt=known.get("prompt", spec.prompt),
        max_new_tokens=int(known.get("max_new_tokens", spec.max_new_tokens)),
        layout=spec.layout,
        options=options,
        config_key=known.get("config_key", ""),
    )


def build_tasks(names: Iterable[str], catalog: Mapping[str, Mapping[str, Any]] | None = None) -> list[Task]:
    """Tasks by name, each configured from ``catalog[name]`` (the ``eval.catalog`` config node) if present."""
    catalog = catalog or {}
    tasks = []
    for name in names:
        cfg = dict(catalog.get(name) or {})
        tasks.append(build_task(name, **cfg))
    return tasks


__all__ = [
    "CATEGORIES",
    "EVAL_DIR_ENV",
    "OPTION_LETTER_PROMPT",
    "SHORT_ANSWER_PROMPT",
    "TASKS",
    "BenchmarkNotFoundError",
    "Sample",
    "Task",
    "TaskSpec",
    "build_task",
    "build_tasks",
    "default_root",
    "limit_samples",
    "open_image",
]
