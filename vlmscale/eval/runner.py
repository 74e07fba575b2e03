"""Run evaluation tasks on a VisionLanguageModel: batched greedy generation, scoring, files, `result.json`.

For each task: its samples are turned into generation prompts with the data package's conversation
formatting (`vlmscale.data.encode_prompt`, the same template and ``<image>`` placement as training), batched
with the training collate (prompts LEFT-padded), decoded greedily with the KV cache (`vlm.generate`), cut at
the first stop token and scored. ``image_features`` (optional: a frozen tower's cached output by image path,
:mod:`vlmscale.features`, which training passes for the synthetic suite) stands in for the images it holds:
those are never decoded and the tower does not run. Written under ``out_dir``:

- ``<task>.predictions.jsonl``: one line per question (id, question, references, prediction, score, parsed, ...)
- ``<task>.scores.json``: the task's metrics (``error``, ``n``, ``n_unparseable`` and the benchmark's own)
- ``scores.json``: the returned summary

The summary holds ``error/<task>`` for each task, ``error/<category>`` (the mean of the errors that tasks
report for that category; the synthetic task reports one per record category), ``error/avg`` (the mean of
the category errors present) and ``unparseable/<task>`` (how many predictions could not be parsed).
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from vlmscale.contract import IGNORE_INDEX
from vlmscale.errors import MissingFileError

from .tasks import CATEGORIES, Sample, Task, build_tasks, open_image

log = logging.getLogger("vlmscale.eval")


# ------------------------------------------------------------------------------------------- generation


def _image_fields(sample: Sample, image_processor, aspect_ratio, image_features) -> dict:
    """The sample's image as pixel values, or as its cached tower features (``image_features``) when given."""
    if sample.image is None:
        return {"pixel_values": None}
    if image_features is not None:
        return image_features(sample.image)
    from vlmscale.data import process_image

    return {"pixel_values": process_image(open_image(sample.image), image_processor, aspect_ratio)}


def _items(
    samples: Sequence[Sample],
    tokenizer,
    image_processor,
    system_prompt,
    aspect_ratio,
    question_first=False,
    image_features=None,
) -> list[dict]:
    from vlmscale.data import encode_prompt

    items = []
    for s in samples:
        has_image = s.image is not None
        enc = encode_prompt(
            tokenizer, s.question, has_image=has_image, system=system_prompt, question_first=question_first
        )
        items.append(
            {
                **_image_fields(s, image_processor, aspect_ratio, image_features),
                "input_ids": enc["prompt_ids"],
                "labels": torch.full_like(enc["prompt_ids"], IGNORE_INDEX),
                "query_ids": enc["query_ids"],
                "prompt_ids": enc["prompt_ids"],
                "answer": "",
                "category": "",
                "id": s.id,
            }
        )
    return items


@torch.no_grad()
def generate_answers(
    vlm,
    tokenizer,
    image_processor,
    samples: Sequence[Sample],
    batch_size: int = 16,
    max_new_tokens: int = 16,
    *,
    system_prompt: str | None = None,
    image_aspect_ratio: str = "pad",
    progress: bool = True,
    desc: str = "eval",
    image_features=None,
) -> list[str]:
    """Greedy answers for ``samples`` (in their order). Batches group prompts of similar length. The cached
    ``image_features`` are used when they hold every image of ``samples``, else the images are read."""
    from tqdm.auto import tqdm

    from vlmscale.data import collate, decode, stop_token_ids
    from vlmscale.data.llava import processor_image_size

    if not samples:
        return []
    if image_features is not None and not all(s.image in image_features for s in samples if s.image):
        image_features = None  # another benchmark's images: the tower runs on them
    device = next(vlm.parameters()).device
    stop = stop_token_ids(tokenizer)
    image_size = processor_image_size(image_processor) if image_processor is not None else None
    order = sorted(range(len(samples)), key=lambda i: len(samples[i].question))  # less padding per batch
    answers: list[str] = [""] * len(samples)
    was_training = vlm.training
    vlm.eval()
    try:
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for idx in tqdm(batches, desc=desc, unit="batch", disable=not progress):
            items = _items(
                [samples[i] for i in idx],
                tokenizer,
                image_processor,
                system_prompt,
                image_aspect_ratio,
                getattr(vlm, "question_first", False),  # the layout the model was trained on
                image_features,
            )
            batch = collate(items, tokenizer.pad_token_id, image_size=image_size)
            tokens = vlm.generate(
                **_pixels_or_features(batch, vlm, device),
                prompt_ids=batch["prompt_ids"].to(device),
                prompt_attention_mask=batch["prompt_attention_mask"].to(device),
                query_ids=batch["query_ids"].to(device),
                query_attention_mask=batch["query_attention_mask"].to(device),
                has_image=batch["has_image"].to(device),
                max_new_tokens=max_new_tokens,
            )
            for i, text in zip(idx, decode(tokens.cpu(), tokenizer, stop)):
                answers[i] = text
    finally:
        vlm.train(was_training)
    return answers


def _pixels_or_features(batch: Mapping[str, Any], vlm, device) -> dict[str, Any]:
    """``pixel_values`` for ``vlm.generate``, or the cached features (``VisionFeatures``) in their place."""
    if "vision_patches" not in batch:
        return {"pixel_values": batch["pixel_values"].to(device)}
    from vlmscale.models import VisionFeatures

    multilevel = batch.get("vision_multilevel")
    features = VisionFeatures(
        batch["vision_patches"].to(device),
        None if multilevel is None else multilevel.to(device),
        vlm.vision.grid,
    )
    return {"pixel_values": None, "features": features}


# ------------------------------------------------------------------------------------------- evaluation


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, default=str) + "\n")
    tmp.replace(path)


def summarize(task_metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """``error/<task>``, ``error/<category>``, ``error/avg`` and ``unparseable/<task>`` from task metrics, and
    ``exact_error/<category>`` where a task scores a category with partial credit (the synthetic suite's OCR)
    and reports its exact-match error beside it."""
    out: dict[str, float] = {}
    by_category: dict[str, list[float]] = defaultdict(list)
    exact_by_category: dict[str, list[float]] = defaultdict(list)
    for name, m in task_metrics.items():
        out[f"error/{name}"] = float(m["error"])
        out[f"unparseable/{name}"] = int(m.get("n_unparseable", 0))
        for category, error in m["categories"].items():
            by_category[category].append(float(error))
        for category, error in (m.get("exact_categories") or {}).items():
            exact_by_category[category].append(float(error))
    for category, errors in sorted(by_category.items()):
        out[f"error/{category}"] = sum(errors) / len(errors)
    for category, errors in sorted(exact_by_category.items()):
        out[f"exact_error/{category}"] = sum(errors) / len(errors)
    present = [out[f"error/{c}"] for c in CATEGORIES if f"error/{c}" in out]
    out["error/avg"] = sum(present) / len(present) if present else math.nan
    return out


def evaluate(
    vlm,
    tokenizer,
    image_processor,
    tasks: Sequence[Task],
    out_dir: str | Path,
    batch_size: int = 16,
    limit: int | None = None,
    *,
    progress: bool = True,
    system_prompt: str | None = None,
    image_aspect_ratio: str = "pad",
    image_features=None,
) -> dict[str, float]:
    """Evaluate ``vlm`` on ``tasks``; write predictions and scores under ``out_dir``; return the summary
    (``error/<task>``, ``error/reasoning``, ``error/ocr``, ``error/avg``, ``unparseable/<task>``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    task_metrics: dict[str, dict[str, Any]] = {}
    for task in tasks:
        samples = task.load(limit)
        log.info("eval %s: %d questions (category %s)", task.name, len(samples), task.category)
        predictions = generate_answers(
            vlm,
            tokenizer,
            image_processor,
            samples,
            batch_size,
            task.max_new_tokens,
            system_prompt=system_prompt,
            image_aspect_ratio=image_aspect_ratio,
            progress=progress,
            desc=f"eval {task.name}",
            image_features=image_features,
        )
        metrics, records = task.score(samples, predictions)
        rows = [{**s.to_record(), **r} for s, r in zip(samples, records)]
        _write_jsonl(out_dir / f"{task.name}.predictions.jsonl", rows)
        scores = {"task": task.name, "category": task.category, "limit": limit, **metrics}
        (out_dir / f"{task.name}.scores.json").write_text(json.dumps(scores, indent=2, default=str) + "\n")
        task_metrics[task.name] = metrics
        if metrics.get("n_unparseable"):
            log.warning(
                "eval %s: %d of %d predictions could not be parsed (counted wrong)",
                task.name,
                metrics["n_unparseable"],
                metrics["n"],
            )
        log.info("eval %s: error %.4f", task.name, metrics["error"])
    summary = summarize(task_metrics)
    (out_dir / "scores.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ------------------------------------------------------------------------------------------- result.json


def update_result_json(
    run_dir: str | Path, metrics: Mapping[str, Any], info: Mapping[str, Any] | None = None
):
    """Merge ``metrics`` into the run's ``result.json`` ``metrics`` (atomically, through `vlmscale.results`)
    and record ``info`` (tasks, limit, where predictions are) under ``eval``. Returns the path."""
    from vlmscale.results import RESULT_FILE, read_result, write_result

    record = read_result(run_dir)
    if record is None:
        raise MissingFileError(
            f"{Path(run_dir) / RESULT_FILE} does not exist: evaluation adds to a finished run's result; "
            "the scores are in the eval output folder"
        )
    record["metrics"] = {**(record.get("metrics") or {}), **metrics}
    record.pop("nan_metrics", None)  # recomputed by write_result from the merged metrics
    if info is not None:
        record["eval"] = dict(info)
    return write_result(run_dir, record)


# ------------------------------------------------------------------------------------------- from config


def synthetic_root(data_cfg: Mapping[str, Any] | None) -> str | None:
    """The synthetic suite folder a data config (``conf/data/synthetic.yaml``) describes, generated if needed."""
    if not data_cfg or data_cfg.get("source", "synthetic") != "synthetic":
        return None
    from vlmscale.data import ensure_synthetic

    folder = ensure_synthetic(
        data_cfg.get("cache_dir"),
        seed=int(data_cfg.get("seed", 0)),
        sizes=data_cfg.get("sizes"),
        image_size=int(data_cfg.get("image_size", 64)),
        family_weights=data_cfg.get("family_weights"),
        progress=bool(data_cfg.get("progress", False)),
    )
    return str(folder)


def tasks_from_config(
    eval_cfg: Mapping[str, Any], data_cfg: Mapping[str, Any] | None = None, names: Sequence[str] | None = None
) -> list[Task]:
    """Tasks named in ``eval_cfg['tasks']`` (or ``names``), configured by ``eval_cfg['catalog']``; a
    synthetic task without a root reads the suite of ``data_cfg``."""
    catalog = {k: dict(v or {}) for k, v in (eval_cfg.get("catalog") or {}).items()}
    names = list(names if names is not None else eval_cfg.get("tasks") or [])
    if "synthetic" in names and not (catalog.get("synthetic") or {}).get("root"):
        root = synthetic_root(data_cfg)
        if root is not None:
            catalog.setdefault("synthetic", {})["root"] = root
    return build_tasks(names, catalog, data_dir=eval_cfg.get("data_dir"), scoring=eval_cfg.get("scoring"))


def evaluate_from_config(
    cfg: Mapping[str, Any],
    vlm,
    tokenizer,
    out_dir: str | Path,
    names: Sequence[str] | None = None,
    limit: int | None = None,
    image_features=None,
) -> dict[str, float]:
    """`evaluate` driven by a resolved plain-dict run config (keys ``eval``, ``data``): what training calls
    at its end (``eval.tasks``, with the test split's cached ``image_features`` when it has them) and what
    ``python -m vlmscale.eval`` calls."""
    eval_cfg = dict(cfg.get("eval") or {})
    data_cfg = dict(cfg.get("data") or {})
    tasks = tasks_from_config(eval_cfg, data_cfg, names)
    return evaluate(
        vlm,
        tokenizer,
        vlm.vision.image_processor,
        tasks,
        out_dir,
        batch_size=int(eval_cfg.get("batch_size", 16)),
        limit=limit if limit is not None else eval_cfg.get("limit"),
        progress=bool(eval_cfg.get("progress", True)),
        system_prompt=data_cfg.get("system_prompt"),
        image_aspect_ratio=data_cfg.get("image_aspect_ratio", "pad"),
        image_features=image_features,
    )
