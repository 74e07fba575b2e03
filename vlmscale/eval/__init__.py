"""Downstream evaluation: benchmark tasks (loaders + official scorers), batched greedy generation, and the
per-category errors (``error/reasoning``, ``error/ocr``, ``error/avg``) that land in each run's result.json.

    from vlmscale.eval import build_tasks, evaluate, update_result_json
    metrics = evaluate(vlm, tokenizer, vlm.vision.image_processor, build_tasks(["synthetic"], catalog), out_dir)

CLI: ``python -m vlmscale.eval ckpt=PATH tasks=[synthetic,gqa,pope] limit=50`` (see conf/eval.yaml).
"""

from __future__ import annotations

from typing import Any

from .tasks import TASKS, BenchmarkNotFoundError, Sample, Task, build_task, build_tasks

_RUNNER = {
    "evaluate",
    "evaluate_from_config",
    "generate_answers",
    "summarize",
    "tasks_from_config",
    "update_result_json",
}

__all__ = ["TASKS", "BenchmarkNotFoundError", "Sample", "Task", "build_task", "build_tasks", *sorted(_RUNNER)]


def __getattr__(name: str) -> Any:  # the runner imports torch: load it only when asked for
    if name in _RUNNER:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'vlmscale.eval' has no attribute {name!r}")
