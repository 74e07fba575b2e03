"""The benchmark registry: every module in this package that declares ``BENCHMARK = Benchmark(...)``.

A benchmark is declared once, in its own module (``gqa.py``, ``pope.py``, ...): loader, scorings, category,
answer prompt, generation length, folder layout. Adding one = adding a file (+ a test). The config
(``conf/eval/default.yaml``) only says which tasks to run, where their folders are and which scoring to use.

``build_task(name, root=..., scoring=..., ...)`` makes a runnable `Task`; ``max_new_tokens``, ``prompt``,
``category`` and task options may be overridden (``eval.catalog.<name>``). A task's folder defaults to
``<data_dir>/<folder>`` (``eval.data_dir``, else ``$VLMSCALE_EVAL_DIR``).

Categories follow the paper: its visual-reasoning average (MME, GQA, AI2D, MMBench, MMMU, ScienceQA,
MathVista, POPE, ChartQA, + SEED-Bench here) and the OCR-like tasks (TextVQA, DocVQA, OCRBench), where the
trend reverses.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import (
    CATEGORIES,
    EVAL_DIR_ENV,
    OPTION_LETTER_PROMPT,
    SHORT_ANSWER_PROMPT,
    Benchmark,
    BenchmarkNotFoundError,
    Sample,
    SampleError,
    Task,
    UnknownTaskError,
    limit_samples,
    open_image,
)

OFFICIAL = "official"
_NOT_BENCHMARKS = {"base", "common"}


def _discover() -> dict[str, Benchmark]:
    found: dict[str, Benchmark] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_BENCHMARKS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        bench = getattr(module, "BENCHMARK", None)
        if not isinstance(bench, Benchmark):
            raise TypeError(f"{module.__name__} declares no BENCHMARK = Benchmark(...)")
        if bench.name in found:
            raise ValueError(f"benchmark {bench.name!r} is declared twice ({module.__name__})")
        found[bench.name] = bench
    return found


TASKS: dict[str, Benchmark] = _discover()


def benchmark(name: str) -> Benchmark:
    if name not in TASKS:
        raise UnknownTaskError(f"unknown eval task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def default_root(name: str, data_dir: str | Path | None = None) -> str | None:
    """``<data_dir>/<folder>`` (``data_dir`` else ``$VLMSCALE_EVAL_DIR``), or None when neither is set."""
    base = data_dir or os.environ.get(EVAL_DIR_ENV)
    if not base:
        return None
    bench = benchmark(name)
    return str(Path(base) / (bench.folder or name))


def scoring_for(name: str, scoring: str | Mapping[str, str] | None = None) -> str:
    """The scoring a task runs with. ``scoring`` is one name for every task (a task without that name keeps
    its default, e.g. MathVista's ``rules``) or a mapping {task: name} (a named scoring must exist)."""
    bench = benchmark(name)
    if isinstance(scoring, Mapping):
        chosen = scoring.get(name)
        if chosen is None:
            return bench.default_scoring
        bench.scorer(chosen)  # an unknown name fails here, naming what exists
        return chosen
    if scoring and scoring in bench.scorings:
        return scoring
    if scoring and scoring not in {s for b in TASKS.values() for s in b.scorings}:
        bench.scorer(scoring)
    return bench.default_scoring


def build_task(
    name: str,
    root: str | Path | None = None,
    *,
    scoring: str | None = None,
    data_dir: str | Path | None = None,
    **overrides: Any,
) -> Task:
    """A runnable task. ``scoring`` names one of the benchmark's scorings (default: its official one);
    ``overrides`` may set category, prompt, max_new_tokens and loader/scorer options (any other key is
    passed into ``Task.options``)."""
    bench = benchmark(name)
    chosen = scoring or bench.default_scoring
    fields = {"category", "prompt", "max_new_tokens", "config_key"}
    known = {k: v for k, v in overrides.items() if k in fields}
    options = {**bench.options, **(overrides.get("options") or {})}
    options.update({k: v for k, v in overrides.items() if k not in fields and k not in ("options", "folder")})
    return Task(
        name=name,
        category=known.get("category", bench.category),
        root=root if root is not None else default_root(name, data_dir),
        loader=bench.loader,
        scorer=bench.scorer(chosen),
        prompt=known.get("prompt", bench.prompt),
        max_new_tokens=int(known.get("max_new_tokens", bench.max_new_tokens)),
        layout=bench.layout,
        options=options,
        config_key=known.get("config_key", ""),
        scoring=chosen,
    )


def build_tasks(
    names: Iterable[str],
    catalog: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    data_dir: str | Path | None = None,
    scoring: str | Mapping[str, str] | None = None,
) -> list[Task]:
    """Tasks by name, each configured from ``catalog[name]`` (the ``eval.catalog`` config node) if present;
    ``scoring`` as in `scoring_for`."""
    catalog = catalog or {}
    tasks = []
    for name in names:
        cfg = dict(catalog.get(name) or {})
        cfg.setdefault("scoring", scoring_for(name, scoring))
        tasks.append(build_task(name, data_dir=data_dir, **cfg))
    return tasks


def scorings_from_config(eval_cfg: Mapping[str, Any], names: Sequence[str] | None = None) -> dict[str, str]:
    """{task: scoring} for the tasks an eval config runs: what result.json records next to the metrics."""
    catalog = eval_cfg.get("catalog") or {}
    names = list(names if names is not None else eval_cfg.get("tasks") or [])
    return {
        n: (catalog.get(n) or {}).get("scoring") or scoring_for(n, eval_cfg.get("scoring")) for n in names
    }


__all__ = [
    "CATEGORIES",
    "EVAL_DIR_ENV",
    "OFFICIAL",
    "OPTION_LETTER_PROMPT",
    "SHORT_ANSWER_PROMPT",
    "TASKS",
    "Benchmark",
    "BenchmarkNotFoundError",
    "Sample",
    "SampleError",
    "Task",
    "UnknownTaskError",
    "benchmark",
    "build_task",
    "build_tasks",
    "default_root",
    "limit_samples",
    "open_image",
    "scoring_for",
    "scorings_from_config",
]
