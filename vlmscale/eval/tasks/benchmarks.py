"""Loaders and scorers of the real benchmarks, each for the format it is usually distributed in for
LLaVA-style evaluation. The expected layout of each task folder is in its ``LAYOUT_*`` string (shown in the
error raised when files are missing)."""

from __future__ import annotations

import ast
import json
import math
import re
from collections import defaultdict
from typing import Any

from .. import scorers
from .base import (
    Sample,
    Task,
    decode_base64_image,
    format_options,
    image_bytes,
    read_jsonl,
    simple_scorer,
    with_prompt,
)

# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "nan", "none")


def _open_answer(pred: str) -> str | None:
    """An open-ended answer is unparseable only when it is empty."""
    return pred if str(pred).strip() else None


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _read_parquets(task: Task, pattern: str = "**/*.parquet"):
    import pandas as pd

    files = sorted(p for p in task.path.glob(pattern) if p.is_file())
    if not files:
        raise task._missing(f"{pattern} in {task.path}")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _choice_question(question: str, options: list[str], prompt: str | None, hint: str | None = None) -> str:
    text = question.strip()
    if hint:
        text = f"{hint.strip()}\n{text}"
    return with_prompt(f"{text}\n{format_options(options)}", prompt)


def choice_scorer(task: Task, samples: list[Sample], predictions: list[str]):
    """Multiple choice: the extracted option letter must equal the reference letter (first reference);
    MMMU's open questions (no options) use exact match. Samples with ``meta['group']`` shared by several
    circular passes are also scored with the circular rule (``circular_accuracy``), which then gives the
    error."""
    records, unparseable = [], 0
    for sample, pred in zip(samples, predictions):
        if sample.options:
            letter = scorers.extract_option_letter(pred, sample.options)
            parsed = letter is not None
            correct = float(parsed and letter == sample.references[0])
        else:
            letter = None
            parsed = _open_answer(pred) is not None
            correct = scorers.exact_match(pred, sample.references) if parsed else 0.0
        unparseable += not parsed
        records.append(
            {
                "id": sample.id,
                "prediction": pred,
                "extracted": letter,
                "reference": sample.references[0] if sample.references else None,
                "score": correct,
                "parsed": parsed,
                "group": sample.meta.get("group", sample.id),
            }
        )
    n = len(records)
    accuracy = _mean([r["score"] for r in records])
    metrics: dict[str, Any] = {"accuracy": accuracy, "n": n, "n_unparseable": unparseable}
    if task.options.get("circular"):
        circ = scorers.circular_accuracy((r["group"], r["score"] == 1.0) for r in records)
        first_pass = [r["score"] for s, r in zip(samples, records) if s.meta.get("circular_pass", 0) == 0]
        metrics.update(
            circular_accuracy=circ["accuracy"],
            n_questions=circ["n_questions"],
            single_pass_accuracy=_mean(first_pass),
        )
        metrics["error"] = 1.0 - circ["accuracy"]
    else:
        metrics["error"] = 1.0 - accuracy
    return metrics, records


# ----------------------------------------------------------------------------------------------------------
# GQA (testdev-balanced): exact match
# ----------------------------------------------------------------------------------------------------------

LAYOUT_GQA = """  testdev_balanced_questions.json   official GQA questions: {qid: {"imageId", "question", "answer", ...}}
  images/<imageId>.jpg"""


def load_gqa(task: Task) -> list[Sample]:
    questions = json.loads(task.file("testdev_balanced_questions.json", "*questions*.json").read_text())
    images = task.path / "images"
    return [
        Sample(
            id=str(qid),
            image=str(images / f"{q['imageId']}.jpg"),
            question=with_prompt(q["question"], task.prompt),
            references=[str(q["answer"])],
        )
        for qid, q in questions.items()
    ]


score_gqa = simple_scorer(
    lambda pred, s: scorers.exact_match(pred, s.references) if _open_answer(pred) else None
)


# ----------------------------------------------------------------------------------------------------------
# TextVQA (val): VQA accuracy
# ----------------------------------------------------------------------------------------------------------

LAYOUT_TEXTVQA = """  TextVQA_0.5.1_val.json   {"data": [{"question_id", "image_id", "question", "answers": [10 strings]}]}
  train_images/<image_id>.jpg"""


def load_textvqa(task: Task) -> list[Sample]:
    data = json.loads(task.file("TextVQA_0.5.1_val.json", "TextVQA*.json").read_text())["data"]
    images = task.path / "train_images"
    return [
        Sample(
            id=str(q["question_id"]),
            image=str(images / f"{q['image_id']}.jpg"),
            question=with_prompt(q["question"], task.prompt),
            references=[str(a) for a in q["answers"]],
        )
        for q in data
    ]


score_textvqa = simple_scorer(
    lambda pred, s: scorers.vqa_accuracy(pred, s.references) if _open_answer(pred) else None
)


# ----------------------------------------------------------------------------------------------------------
# POPE (random / popular / adversarial): yes-no metrics per split
# ----------------------------------------------------------------------------------------------------------

LAYOUT_POPE = """  coco_pope_{random,popular,adversarial}.json   one JSON object a line: {"question_id", "image", "text", "label": "yes"|"no"}
                                                 (also accepted under coco/, as in LLaVA's playground)
  val2014/<image>                                 COCO val2014 images"""


def load_pope(task: Task) -> list[Sample]:
    samples = []
    for split in task.options.get("splits", ["adversarial", "popular", "random"]):
        path = task.file(f"coco_pope_{split}.json", f"coco/coco_pope_{split}.json")
        images = task.path / "val2014"
        for q in read_jsonl(path):
            samples.append(
                Sample(
                    id=f"{split}/{q['question_id']}",
                    image=str(images / q["image"]),
                    question=with_prompt(q["text"], task.prompt),
                    references=[str(q["label"]).lower()],
                    meta={"split": split},
                )
            )
    return samples


def score_pope(task: Task, samples: list[Sample], predictions: list[str]):
    """Per split: accuracy, precision, recall, F1, yes-ratio. error = 1 - mean accuracy over the splits."""
    by_split: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    records = []
    for sample, pred in zip(samples, predictions):
        preds, labels = by_split[sample.meta["split"]]
        preds.append(pred)
        labels.append(sample.references[0])
        answer = scorers.parse_yes_no(pred)
        records.append(
            {
                "id": sample.id,
                "prediction": pred,
                "extracted": answer,
                "score": float(answer == sample.references[0]),
                "parsed": answer is not None,
            }
        )
    splits = {split: scorers.pope_metrics(p, lab) for split, (p, lab) in by_split.items()}
    metrics: dict[str, Any] = {"splits": splits}
    for key in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
        metrics[key] = _mean([m[key] for m in splits.values()])
    metrics["n"] = len(samples)
    metrics["n_unparseable"] = sum(m["n_unparseable"] for m in splits.values())
    metrics["error"] = 1.0 - metrics["accuracy"]
    return metrics, records


# ----------------------------------------------------------------------------------------------------------
# MME: accuracy and accuracy+ per subtask
# ----------------------------------------------------------------------------------------------------------

LAYOUT_MME = """  <subtask>/                      one folder per subtask (existence, count, ..., code_reasoning), either
    images/<name>.jpg|png          + questions_answers_YN/<name>.txt  ("question<TAB>Yes|No", one a line)
  or
    <name>.jpg|png + <name>.txt    side by side (the MME_Benchmark_release_version layout)"""

_IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def load_mme(task: Task) -> list[Sample]:
    root = task.path
    subtasks = sorted(p for p in root.iterdir() if p.is_dir())
    if not subtasks:
        raise task._missing(f"subtask folders in {root}")
    samples = []
    for sub in subtasks:
        qa_dir = sub / "questions_answers_YN"
        image_dir = sub / "images" if qa_dir.is_dir() else sub
        txt_dir = qa_dir if qa_dir.is_dir() else sub
        images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in _IMAGE_EXTS}
        for txt in sorted(txt_dir.glob("*.txt")):
            if txt.stem not in images:
                continue
            lines = [ln for ln in txt.read_text().splitlines() if ln.strip()]
            for k, line in enumerate(lines):
                question, answer = line.rsplit("\t", 1)
                image = images[txt.stem]
                samples.append(
                    Sample(
                        id=f"{sub.name}/{image.name}/{k}",
                        image=str(image),
                        question=with_prompt(question, task.prompt),
                        references=[answer.strip().lower()],
                        meta={"subtask": sub.name, "image": image.name, "group": f"{sub.name}/{image.name}"},
                    )
                )
    return samples


def score_mme(task: Task, samples: list[Sample], predictions: list[str]):
    """See `scorers.mme_metrics`: error = 1 - (perception + cognition) / (200 x subtasks present)."""
    metrics = scorers.mme_metrics(
        (s.meta["subtask"], s.meta["image"], pred, s.references[0]) for s, pred in zip(samples, predictions)
    )
    records = []
    for s, pred in zip(samples, predictions):
        answer = scorers.parse_mme_answer(pred)
        records.append(
            {
                "id": s.id,
                "prediction": pred,
                "extracted": answer,
                "score": float(answer == s.references[0]),
                "parsed": answer is not None,
            }
        )
    return metrics, records


# ----------------------------------------------------------------------------------------------------------
# MMBench (dev TSV): circular evaluation
# ----------------------------------------------------------------------------------------------------------

LAYOUT_MMBENCH = """  mmbench_dev_20230712.tsv (any *.tsv)   columns: index, question, hint, A, B, C, D[, E...], answer,
                                          image (base64), category, ...  Rows with index >= 1000000 are
                                          taken as ready-made circular passes of row index % 1000000;
                                          otherwise the options are rotated here (one pass per option)."""


def load_mmbench(task: Task) -> list[Sample]:
    import pandas as pd

    path = task.file(task.options.get("file", "mmbench_dev_20230712.tsv"), "*.tsv")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    by_index = {str(r["index"]): r for _, r in df.iterrows()}
    pre_circular = any(int(i) >= 1_000_000 for i in by_index)
    rotate = task.options.get("circular", True) and not pre_circular
    samples = []
    for _, row in df.iterrows():
        letters = [c for c in "ABCDEFGHI" if c in row and not _is_missing(row[c])]
        options = [str(row[c]) for c in letters]
        answer = str(row["answer"]).strip()
        image = str(row.get("image", ""))
        if len(image) < 64 and image.isdigit():  # VLMEvalKit stores repeated images as a row reference
            image = str(by_index[image]["image"])
        image_data = decode_base64_image(image) if image else None
        hint = None if _is_missing(row.get("hint")) else str(row["hint"])
        index = int(row["index"])
        group = str(index % 1_000_000)
        passes = range(len(options)) if rotate else range(1)
        for k in passes:
            rotated = options[k:] + options[:k]
            ref = "ABCDEFGHI"[(letters.index(answer) - k) % len(options)] if answer in letters else answer
            samples.append(
                Sample(
                    id=f"{index}/{k}" if rotate else str(index),
                    image=image_data,
                    question=_choice_question(str(row["question"]), rotated, task.prompt, hint),
                    references=[ref],
                    options=rotated,
                    meta={
                        "group": group,
                        "circular_pass": k if rotate else index // 1_000_000,
                        "category": str(row.get("category", "")),
                    },
                )
            )
    return samples


# ----------------------------------------------------------------------------------------------------------
# ScienceQA-IMG (test, questions with an image)
# ----------------------------------------------------------------------------------------------------------

LAYOUT_SCIENCEQA = """  problems.json      {pid: {"question", "choices": [...], "answer": <index>, "hint", "image": "image.png"|null, "split"}}
  pid_splits.json    {"test": [pid, ...], ...}   (optional: falls back to each problem's "split")
  images/test/<pid>/image.png"""


def load_scienceqa(task: Task) -> list[Sample]:
    problems = json.loads(task.file("problems.json").read_text())
    split = task.options.get("split", "test")
    splits_path = task.path / "pid_splits.json"
    pids = (
        json.loads(splits_path.read_text())[split]
        if splits_path.exists()
        else [pid for pid, p in problems.items() if p.get("split") == split]
    )
    samples = []
    for pid in pids:
        p = problems[str(pid)]
        if not p.get("image"):
            continue  # ScienceQA-IMG: only the questions with an image
        options = [str(c) for c in p["choices"]]
        hint = str(p.get("hint") or "").strip()
        question = p["question"] + (f"\nContext: {hint}" if hint else "")
        samples.append(
            Sample(
                id=str(pid),
                image=str(task.path / "images" / split / str(pid) / p["image"]),
                question=_choice_question(question, options, task.prompt),
                references=[chr(ord("A") + int(p["answer"]))],
                options=options,
            )
        )
    return samples


# ----------------------------------------------------------------------------------------------------------
# SEED-Bench (image questions)
# ----------------------------------------------------------------------------------------------------------

LAYOUT_SEEDBENCH = """  SEED-Bench.json        {"questions": [{"question_id", "question", "choice_a".."choice_d", "answer": "A".."D",
                                          "data_type": "image"|"video", "data_id": "<file>"}]}
  SEED-Bench-image/<data_id>"""


def load_seedbench(task: Task) -> list[Sample]:
    data = json.loads(task.file("SEED-Bench.json", "SEED-Bench*.json").read_text())
    images = task.path / "SEED-Bench-image"
    samples = []
    for q in data["questions"]:
        if q.get("data_type", "image") != "image":
            continue  # video questions need several frames
        options = [str(q[f"choice_{c}"]) for c in "abcd" if f"choice_{c}" in q]
        samples.append(
            Sample(
                id=str(q["question_id"]),
                image=str(images / q["data_id"]),
                question=_choice_question(q["question"], options, task.prompt),
                references=[str(q["answer"]).strip()],
                options=options,
                meta={"question_type_id": q.get("question_type_id")},
            )
        )
    return samples


# ----------------------------------------------------------------------------------------------------------
# AI2D (test parquet) and MMMU (validation parquets)
# ----------------------------------------------------------------------------------------------------------

LAYOUT_AI2D = """  **/*.parquet   columns: question, options (list of strings), answer (option index or letter),
                 image ({"bytes": ...}), as in the lmms-lab/ai2d release"""


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = ast.literal_eval(value) if value.strip().startswith("[") else [value]
    return [str(v) for v in list(value)]


def _answer_letter(answer: Any, n_options: int) -> str:
    answer = str(answer).strip()
    if answer.isdigit() and int(answer) < n_options:
        return chr(ord("A") + int(answer))
    return answer.upper()


def load_ai2d(task: Task) -> list[Sample]:
    df = _read_parquets(task)
    samples = []
    for i, row in df.iterrows():
        options = _as_list(row["options"])
        samples.append(
            Sample(
                id=str(row["question_id"]) if "question_id" in row else str(i),
                image=image_bytes(row["image"]),
                question=_choice_question(str(row["question"]), options, task.prompt),
                references=[_answer_letter(row["answer"], len(options))],
                options=options,
            )
        )
    return samples


LAYOUT_MMMU = """  **/*.parquet   columns: id, question, options (list or its string form), answer, question_type
                 ("multiple-choice"|"open"), image_1..image_7 ({"bytes": ...}), as in the MMMU/MMMU release
                 (e.g. <Subject>/validation-*.parquet). Only image_1 is shown to the model."""

_MMMU_IMAGE_REF = re.compile(r"<image (\d+)>")


def load_mmmu(task: Task) -> list[Sample]:
    df = _read_parquets(task, task.options.get("pattern", "**/validation-*.parquet"))
    samples = []
    for i, row in df.iterrows():
        options = [_MMMU_IMAGE_REF.sub(r"image \1", o) for o in _as_list(row.get("options", "[]"))]
        question = _MMMU_IMAGE_REF.sub(r"image \1", str(row["question"]))
        multiple_choice = row.get("question_type", "multiple-choice") == "multiple-choice" and options
        if multiple_choice:
            text = _choice_question(question, options, task.prompt)
            refs = [str(row["answer"]).strip()]
        else:
            text = with_prompt(
                question,
                task.options.get("open_prompt", "Answer the question using a single word or phrase."),
            )
            answer = row["answer"]
            refs = _as_list(answer) if str(answer).strip().startswith("[") else [str(answer)]
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


# ----------------------------------------------------------------------------------------------------------
# ChartQA (test: human + augmented): relaxed accuracy
# ----------------------------------------------------------------------------------------------------------

LAYOUT_CHARTQA = """  test_human.json, test_augmented.json   [{"imgname", "query", "label"}]  (also accepted under test/)
  png/<imgname>                          (or test/png/<imgname>)"""


def load_chartqa(task: Task) -> list[Sample]:
    samples = []
    for split in task.options.get("splits", ["human", "augmented"]):
        path = task.file(f"test_{split}.json", f"test/test_{split}.json")
        images = path.parent / "png"
        for k, q in enumerate(json.loads(path.read_text())):
            samples.append(
                Sample(
                    id=f"{split}/{k}",
                    image=str(images / q["imgname"]),
                    question=with_prompt(q["query"], task.prompt),
                    references=[str(q["label"])],
                    meta={"split": split},
                )
            )
    return samples


def score_chartqa(task: Task, samples: list[Sample], predictions: list[str]):
    """Relaxed accuracy over all questions (per split too); error = 1 - overall relaxed accuracy."""
    metrics, records = simple_scorer(
        lambda pred, s: scorers.relaxed_accuracy(pred, s.references[0]) if _open_answer(pred) else None
    )(task, samples, predictions)
    by_split: dict[str, list[float]] = defaultdict(list)
    for s, r in zip(samples, records):
        by_split[s.meta.get("split", "all")].append(r["score"])
    metrics["splits"] = {k: _mean(v) for k, v in by_split.items()}
    metrics["relaxed_accuracy"] = metrics.pop("score")
    return metrics, records


# ----------------------------------------------------------------------------------------------------------
# DocVQA (val): ANLS
# ----------------------------------------------------------------------------------------------------------

LAYOUT_DOCVQA = """  val_v1.0.json (or val_v1.0_withQT.json)   {"data": [{"questionId", "question", "image": "documents/<f>.png",
                                              "answers": [...]}]}
  documents/<f>.png                         (the "image" path, relative to the task folder)"""


def load_docvqa(task: Task) -> list[Sample]:
    data = json.loads(task.file("val_v1.0.json", "val_v1.0_withQT.json", "val*.json").read_text())["data"]
    return [
        Sample(
            id=str(q["questionId"]),
            image=str(task.path / q["image"]),
            question=with_prompt(q["question"], task.prompt),
            references=[str(a) for a in q["answers"]],
        )
        for q in data
    ]


def score_docvqa(task: Task, samples: list[Sample], predictions: list[str]):
    metrics, records = simple_scorer(
        lambda pred, s: scorers.anls(pred, s.references) if _open_answer(pred) else None
    )(task, samples, predictions)
    metrics["anls"] = metrics.pop("score")
    return metrics, records


# ----------------------------------------------------------------------------------------------------------
# OCRBench: substring match, reported out of the number of questions (1000 on the full set)
# ----------------------------------------------------------------------------------------------------------

LAYOUT_OCRBENCH = """  OCRBench.json   [{"id", "dataset_name", "question", "answers": str|[str], "image_path", "type"}]
  OCRBench_Images/...   image_path is resolved against the task folder, then against OCRBench_Images/"""


def load_ocrbench(task: Task) -> list[Sample]:
    data = json.loads(task.file("OCRBench.json", "*.json").read_text())
    samples = []
    for k, q in enumerate(data):
        rel = str(q["image_path"]).lstrip("./")
        image = task.path / rel
        if not image.exists():
            image = task.path / "OCRBench_Images" / rel
        answers = q["answers"] if isinstance(q["answers"], list) else [q["answers"]]
        samples.append(
            Sample(
                id=str(q.get("id", k)),
                image=str(image),
                question=with_prompt(q["question"], task.prompt),
                references=[str(a) for a in answers],
                meta={"dataset_name": q.get("dataset_name", ""), "type": q.get("type", "")},
            )
        )
    return samples


def score_ocrbench(task: Task, samples: list[Sample], predictions: list[str]):
    metrics, records = simple_scorer(
        lambda pred, s: (
            scorers.ocrbench_match(pred, s.references, s.meta.get("dataset_name", ""))
            if _open_answer(pred)
            else None
        )
    )(task, samples, predictions)
    metrics["accuracy"] = metrics.pop("score")
    metrics["ocrbench_score"] = sum(r["score"] for r in records)  # out of len(samples)
    return metrics, records


# ----------------------------------------------------------------------------------------------------------
# MathVista (testmini parquet): rule-based answer matching (the official evaluation extracts answers with an
# LLM; here multiple choice uses the option-letter extraction and free-form answers the first number / the
# normalised text, compared at the question's precision)
# ----------------------------------------------------------------------------------------------------------

LAYOUT_MATHVISTA = """  **/testmini-*.parquet   columns: pid, question, decoded_image ({"bytes": ...}) or image (path relative to
                          the task folder), choices (list or null), answer, question_type ("multi_choice"|
                          "free_form"), answer_type ("integer"|"float"|"text"|"list"), precision, as in AI4Math/MathVista"""

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def first_number(text: str) -> float | None:
    """The first number written in ``text`` ("about 1,234.5 m" -> 1234.5), or None."""
    m = _NUMBER.search(str(text))
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", ""))
    except ValueError:
        return None


def load_mathvista(task: Task) -> list[Sample]:
    df = _read_parquets(task, task.options.get("pattern", "**/testmini-*.parquet"))
    samples = []
    for i, row in df.iterrows():
        choices = row.get("choices")
        choices = [] if choices is None or _is_missing(choices) else [str(c) for c in list(choices)]
        image = image_bytes(row.get("decoded_image"))
        if image is None and isinstance(row.get("image"), str):
            image = str(task.path / row["image"])
        answer = str(row["answer"])
        meta = {
            "answer_type": str(row.get("answer_type", "text")),
            "precision": None if _is_missing(row.get("precision")) else int(float(row["precision"])),
        }
        if row.get("question_type") == "multi_choice" and choices:
            ref = chr(ord("A") + choices.index(answer)) if answer in choices else answer
            samples.append(
                Sample(
                    id=str(row.get("pid", i)),
                    image=image,
                    question=_choice_question(str(row["question"]), choices, task.prompt),
                    references=[ref],
                    options=choices,
                    meta=meta,
                )
            )
        else:
            open_prompt = task.options.get(
                "open_prompt", "Answer the question using a single word or phrase."
            )
            samples.append(
                Sample(
                    id=str(row.get("pid", i)),
                    image=image,
                    question=with_prompt(str(row["question"]), open_prompt),
                    references=[answer],
                    meta=meta,
                )
            )
    return samples


def _mathvista_free_form(pred: str, sample: Sample) -> float | None:
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
    return scorers.exact_match(pred, sample.references) if _open_answer(pred) else None


def score_mathvista(task: Task, samples: list[Sample], predictions: list[str]):
    """Multiple choice: option letter (or the option's text); free form: numbers at the given precision,
    text by exact match. error = 1 - accuracy."""
    records, unparseable = [], 0
    for sample, pred in zip(samples, predictions):
        if sample.options:
            letter = scorers.extract_option_letter(pred, sample.options)
            value = None if letter is None else float(letter == sample.references[0])
        else:
            value = _mathvista_free_form(pred, sample)
        parsed = value is not None
        unparseable += not parsed
        records.append({"id": sample.id, "prediction": pred, "score": value or 0.0, "parsed": parsed})
    accuracy = _mean([r["score"] for r in records])
    return {
        "accuracy": accuracy,
        "error": 1.0 - accuracy,
        "n": len(records),
        "n_unparseable": unparseable,
    }, records
