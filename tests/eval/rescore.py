"""Per-task errors recomputed from what the runner wrote: the predictions in `<task>.predictions.jsonl`,
matched to the task's questions by id and scored by the task's scorer, apart from the run that wrote them."""

from __future__ import annotations

import json
from pathlib import Path

from vlmscale.eval.tasks import Task


def rescored_error(task: Task, eval_dir: Path, limit: int | None = None) -> float:
    rows = [json.loads(line) for line in (Path(eval_dir) / f"{task.name}.predictions.jsonl").open()]
    predicted = {row["id"]: row["prediction"] for row in rows}
    samples = task.load(limit)
    assert len(predicted) == len(rows) == len(samples), f"{task.name}: one row per question, ids unique"
    metrics, _ = task.score(samples, [predicted[sample.id] for sample in samples])
    return metrics["error"]
