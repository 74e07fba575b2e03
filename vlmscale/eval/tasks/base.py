"""What a benchmark is: its declaration (`Benchmark`: loader, scorings, defaults), a runnable `Task` and its
`Sample`s.

Each module under ``eval/tasks/`` declares one ``BENCHMARK = Benchmark(...)``; the package finds them. A `Task` turns a benchmark folder into `Sample`s (question text already carrying the task's answer prompt)
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

from vlmscale.errors import MissingFileError, UserError

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


class BenchmarkNotFoundError(MissingFileError):
    """A benchmark folder or file is missing: the message names the task, the layout and what to set."""


class UnknownTaskError(UserError, KeyError):
    """An eval task name no module under vlmscale/eval/tasks/ declares; the message lists the known ones."""


class SampleError(UserError):
    """A sample a scorer cannot use (references not a list of strings, metadata missing): names the sample."""


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


def check_category(owner: str, category: str) -> None:
    """Both a benchmark and a task carry a category; it must be one the category averages know."""
    if category not in CATEGORIES:
        raise ValueError(f"{owner}: category must be one of {CATEGORIES}, got {category!r}")


def open_question(task: Task, id: Any, image: str | Path, question: str, answers: Sequence[Any]) -> Sample:
    """A free-answer question: the task's answer prompt appended, id, image path and answers as text."""
    return Sample(
        id=str(id),
        image=str(image),
        question=with_prompt(question, task.prompt),
        references=[str(a) for a in answers],
    )


Loader = Callable[["Task"], list[Sample]]
Scorer = Callable[["Task", list[Sample], list[Any]], tuple[dict[str, Any], list[dict[str, Any]]]]


@dataclass(frozen=True)
class Benchmark:
    """Everything vlmscale knows about one benchmark, declared once in its module (``BENCHMARK = ...``).

    ``scorings`` maps a scoring name to its scorer: ``official`` reproduces the benchmark's official script,
    ``lenient`` is vlmscale's more tolerant variant (opt-in). ``folder`` is the task folder's name under
    the folder holding all benchmarks (``eval.data_dir``); ``layout`` describes its expected contents.
    """

    name: str
    loader: Loader
    scorings: Mapping[str, Scorer]
    category: str
    layout: str
    prompt: str | None = SHORT_ANSWER_PROMPT
    max_new_tokens: int = 16
    folder: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    default_scoring: str = "official"

    def __post_init__(self) -> None:
        check_category(f"benchmark {self.name!r}", self.category)
        if self.default_scoring not in self.scorings:
            raise ValueError(
                f"benchmark {self.name!r}: default scoring {self.default_scoring!r} is not declared"
            )

    def scorer(self, scoring: str) -> Scorer:
        if scoring not in self.scorings:
            raise UserError(
                f"task {self.name!r} has no scoring {scoring!r}; it has: {', '.join(sorted(self.scorings))} "
                f"(set eval.scoring, e.g. eval.scoring={{{self.name}: {self.default_scoring}}})"
            )
        return self.scorings[scoring]


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
    scoring: str = "official"

    def __post_init__(self) -> None:
        check_category(f"task {self.name!r}", self.category)

    # -- files ---------------------------------------------------------------------------------------------
    def _missing(self, what: str) -> BenchmarkNotFoundError:
        key = self.config_key or f"++eval.catalog.{self.name}.root"  # ++: add or override
        return BenchmarkNotFoundError(
            f"task {self.name!r}: {what} not found.\n"
            f"Expected layout under the task folder:\n{self.layout}\n"
            f"Set the folder with `{key}=/path/to/{self.name}`, or put it at <eval.data_dir>/{self.name} "
            f"(eval.data_dir defaults to ${EVAL_DIR_ENV}, the environment variable naming the folder that "
            "holds all benchmarks)."
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
        for sample in samples:
            self.check_references(sample)
        metrics, records = self.scorer(self, list(samples), list(predictions))
        metrics.setdefault("categories", {self.category: metrics["error"]})
        metrics["scoring"] = self.scoring
        return metrics, records

    def check_references(self, sample: Sample) -> list[str]:
        refs = sample.references
        if isinstance(refs, str | bytes) or not isinstance(refs, Sequence) or not refs:
            raise SampleError(
                f"task {self.name!r}, sample {sample.id!r}: references must be a non-empty list of strings, "
                f"got {refs!r}"
            )
        if not all(isinstance(r, str) for r in refs):
            raise SampleError(
                f"task {self.name!r}, sample {sample.id!r}: references must be strings, got {refs!r}"
            )
        return list(refs)

    def meta(self, sample: Sample, name: str) -> Any:
        """``sample.meta[name]``, or an error naming the task, the sample and the missing field."""
        if name not in sample.meta:
            raise SampleError(
                f"task {self.name!r}, sample {sample.id!r}: metadata field {name!r} is missing "
                f"(the {self.name} loader sets it; samples built by hand must too)"
            )
        return sample.meta[name]


def limit_samples(samples: list[Sample], limit: int) -> list[Sample]:
    """The first ``limit`` questions; samples sharing a ``meta['group']`` (MMBench circular passes, MME's
    two questions per image) are kept or dropped together so the group scores remain meaningful."""
    keep: set[str] = set()
    for s in samples:
        if len(keep) >= limit:
            break
        keep.add(str(s.meta.get("group", s.id)))
    return [s for s in samples if str(s.meta.get("group", s.id)) in keep]


def is_answer(pred: Any) -> bool:
    """A prediction that is text with something in it (else it counts as unparseable, and wrong)."""
    return isinstance(pred, str) and bool(pred.strip())


def official_and_lenient(make: Callable[[Any], Scorer], official: Any, lenient: Any) -> dict[str, Scorer]:
    """The usual two scorings of a benchmark: one scorer built once with the official rule (parser, letter
    rule, metric) and once with vlmscale's more tolerant one."""
    return {"official": make(official), "lenient": make(lenient)}


def simple_scorer(score_one: Callable[[Any, Sample], float | None], name: str = "score") -> Scorer:
    """A scorer averaging a per-question score (reported as ``name``); ``score_one`` returns None for an
    answer it cannot parse. Empty and non-text predictions are unparseable; their score is the scorer's."""

    def scorer(task: Task, samples: list[Sample], predictions: list[Any]):
        records, total, unparseable = [], 0.0, 0
        for sample, pred in zip(samples, predictions):
            value = score_one(pred, sample)
            parsed = value is not None and is_answer(pred)
            value = float(value or 0.0)
            unparseable += not parsed
            total += value
            records.append({"id": sample.id, "prediction": pred, "score": value, "parsed": parsed})
        n = len(samples)
        accuracy = total / n if n else 0.0
        return {name: accuracy, "error": 1.0 - accuracy, "n": n, "n_unparseable": unparseable}, records

    return scorer
