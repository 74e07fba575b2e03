"""What a task is: evaluation samples, a loader for the benchmark's usual distribution format, a scorer.

A `Task` turns a benchmark folder into `Sample`s (question text already carrying the task's answer prompt)
and scores the model's predictions for them, returning metrics that always include ``error`` in [0, 1],
``n`` and ``n_unparseable`` (predictions that could not be read as an answer; they count as wrong), plus
``categories``: {category: error} for the category averages (one entry for most tasks; the synthetic suite
splits its records by their own category).
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CATEGORIES = ("reasoning", "ocr")
EVAL_DIR_ENV = "VLMSCALE_EVAL_DIR"

SHORT_ANSWER_PROMPT = "Answer the question using a single word or phrase."
OPTION_LETTER_PROMPT = "Answer with the option's letter from the given choices directly."
IMAGE_PLACEHOLDER = "<image>"  # never allowed inside question text: the data package splices it


@dataclass
class Sample:
    """One question to ask. ``image`` is a file path, raw encoded image bytes, or None (text-only)."""

    id: str
    image: str | bytes | None
    question: str  # the full user text, answer prompt included
    references: list[str]
    options: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """JSON-safe view (image bytes are not written out)."""
        image = self.image if isinstance(self.image, str) or self.image is None else "<bytes>"
        return {
            "id": self.id,
            "image": image,
            "question": self.question,
            "references": self.references,
            "options": self.options,
            "meta": self.meta,
        }


class BenchmarkNotFoundError(FileNotFoundError):
    """A benchmark folder or file is missing: the message names the task, the layout and what to set."""


def open_image(image: str | bytes | Path):
    """A PIL RGB image from a path or encoded bytes."""
    from PIL import Image

    if isinstance(image, bytes | bytearray):
        img = Image.open(io.BytesIO(image))
    else:
        img = Image.open(image)
    return img.convert("RGB")


def decode_base64_image(data: str) -> bytes:
    return base64.b64decode(data)


def image_bytes(value: Any) -> bytes | None:
    """Image bytes from the shapes parquet files store images in (dict with 'bytes', raw bytes), else None."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        raw = value.get("bytes")
        return bytes(raw) if raw is not None else None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return None


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line:
                yield json.loads(line)


def format_options(options: Sequence[str]) -> str:
    return "\n".join(f"{chr(ord('A') + i)}. {opt}" for i, opt in enumerate(options))


def with_prompt(question: str, prompt: str | None) -> str:
    question = question.replace(IMAGE_PLACEHOLDER, "image").strip()
    return f"{question}\n{prompt}" if prompt else question


Loader = Callable[["Task"], list[Sample]]
Scorer = Callable[["Task", list[Sample], list[str]], tuple[dict[str, Any], list[dict[str, Any]]]]


@dataclass
class Task:
    """A benchmark ready to run: where its files are, how to read them, how to score answers.

    ``layout`` describes the expected folder contents (used in the missing-data error); ``env`` names the
    environment variable whose value is the folder holding all benchmarks (``$VLMSCALE_EVAL_DIR/<subdir>``).
    ``options`` are task-specific loader/scorer options (e.g. POPE splits).
    """

    name: str
    category: str
    root: str | Path | None
    loader: Loader
    scorer: Scorer
    prompt: str | None = SHORT_ANSWER_PROMPT
    max_new_tokens: int = 16
    layout: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    config_key: str = ""

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(
                f"task {self.name!r}: category must be one of {CATEGORIES}, got {self.category!r}"
            )

    # -- files ---------------------------------------------------------------------------------------------
    def _missing(self, what: str) -> BenchmarkNotFoundError:
        key = self.config_key or f"eval.catalog.{self.name}.root"
        return BenchmarkNotFoundError(
            f"task {self.name!r}: {what} not found.\n"
            f"Expected layout under the task folder:\n{self.layout}\n"
            f"Set the folder with the config key `{key}=/path/to/{self.name}` or put it at "
            f"${EVAL_DIR_ENV}/{self.name} (environment variable {EVAL_DIR_ENV}, the folder holding all benchmarks)."
        )

    @property
    def path(self) -> Path:
        if self.root is None or str(self.root) == "":
            raise self._missing("benchmark folder (no path configured)")
        root = Path(os.path.expanduser(str(self.root)))
        if not root.is_dir():
            raise self._missing(f"benchmark folder {root}")
        return root

    def file(self, *names: str) -> Path:
        """The first of ``names`` (relative to the task folder, glob patterns allowed) that exists."""
        root = self.path
        for name in names:
            hits = sorted(root.glob(name)) if any(c in name for c in "*?[") else [root / name]
            hits = [h for h in hits if h.exists()]
            if hits:
                return hits[0]
        raise self._missing(f"{' or '.join(names)} in {root}")

    # -- running -------------------------------------------------------------------------------------------
    def load(self, limit: int | None = None) -> list[Sample]:
        samples = self.loader(self)
        if limit is not None:
            samples = limit_samples(samples, limit)
        return samples

    def score(
        self, samples: Sequence[Sample], predictions: Sequence[str]
    ) -> tuple[dict[str, Any], list[dict]]:
        """(metrics, per-sample records). Metrics hold ``error``, ``n``, ``n_unparseable``, ``categories``."""
        if len(samples) != len(predictions):
            raise ValueError(f"task {self.name!r}: {len(samples)} samples but {len(predictions)} predictions")
        metrics, records = self.scorer(self, list(samples), list(predictions))
        metrics.setdefault("categories", {self.category: metrics["error"]})
        return metrics, records


def limit_samples(samples: list[Sample], limit: int) -> list[Sample]:
    """The first ``limit`` questions; samples sharing a ``meta['group']`` (MMBench circular passes, MME's
    two questions per image) are kept or dropped together so the group scores remain meaningful."""
    keep: set[str] = set()
    for s in samples:
        if len(keep) >= limit:
            break
        keep.add(str(s.meta.get("group", s.id)))
    return [s for s in samples if str(s.meta.get("group", s.id)) in keep]


def simple_scorer(
    score_one: Callable[[str, Sample], float | None],
) -> Scorer:
    """A scorer averaging a per-question score; ``score_one`` returns None for an unparseable answer."""

    def scorer(task: Task, samples: list[Sample], predictions: list[str]):
        records, total, unparseable = [], 0.0, 0
        for sample, pred in zip(samples, predictions):
            value = score_one(pred, sample)
            parsed = value is not None
            value = float(value) if parsed else 0.0
            unparseable += not parsed
            total += value
            records.append({"id": sample.id, "prediction": pred, "score": value, "parsed": parsed})
        n = len(samples)
        accuracy = total / n if n else 0.0
        return {"score": accuracy, "error": 1.0 - accuracy, "n": n, "n_unparseable": unparseable}, records

    return scorer
