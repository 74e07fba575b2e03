"""Benchmark scorers: each benchmark's official rule, and vlmscale's lenient variants (opt-in, by name).

Pure Python on strings (no torch). The default (official) scorers reproduce the scripts published results
were computed with; each says which one. The ``*_lenient`` functions are vlmscale's more tolerant rules.

Conventions
- A per-question scorer returns a float in [0, 1] (1 = right).
- A prediction that is not a string (``None``, a number) is wrong; it is never turned into text.
- References are a non-empty list of strings; anything else raises `AnswersError`.
- Parsers return ``None`` when a prediction cannot be read; the task scorers count those as wrong and
  report how many there were (``n_unparseable``).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from vlmscale.errors import UserError

from .normalize import normalize_answer, vqa_normalize

__all__ = [
    "LETTERS",
    "MME_COGNITION",
    "MME_PERCEPTION",
    "AnswersError",
    "anls",
    "check_answers",
    "circular_accuracy",
    "exact_match",
    "extract_option_letter",
    "gqa_match",
    "levenshtein",
    "mmbench_letter",
    "mme_metrics",
    "normalize_answer",
    "ocrbench_match",
    "parse_mme_answer",
    "parse_mme_answer_lenient",
    "parse_yes_no",
    "parse_yes_no_lenient",
    "pope_metrics",
    "relaxed_accuracy",
    "relaxed_accuracy_lenient",
    "scienceqa_letter",
    "vqa_accuracy",
    "vqa_accuracy_lenient",
    "vqa_normalize",
]


class AnswersError(UserError):
    """References that are not a non-empty list of strings."""


def check_answers(answers: Any, what: str = "answers") -> list[str]:
    """``answers`` as a list, or `AnswersError` when it is not a non-empty list of strings (a bare string
    would otherwise be read character by character)."""
    ok = (
        isinstance(answers, Sequence)
        and not isinstance(answers, str | bytes)
        and len(answers) > 0
        and all(isinstance(a, str) for a in answers)
    )
    if not ok:
        raise AnswersError(f"{what} must be a non-empty list of strings, got {answers!r}")
    return list(answers)


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise AnswersError(f"{what} must be a string, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------------------
# VQA accuracy (TextVQA, VQAv2) and exact match (GQA)
# ----------------------------------------------------------------------------------------------------------


def _annotator_agreement(pred: str, gts: list[str]) -> float:
    """Leave each annotator out in turn: min(1, #others agreeing / 3), averaged. One reference: exact match
    (the official script requires ten)."""
    if len(gts) == 1:
        return float(pred == gts[0])
    matches = sum(g == pred for g in gts)
    return sum(min(1.0, (matches - (g == pred)) / 3.0) for g in gts) / len(gts)


def vqa_accuracy(pred: Any, answers: Sequence[str]) -> float:
    """Official VQA accuracy (LLaVA's ``m4c_evaluator.py`` TextVQA evaluator): prediction and the ten
    annotations processed by `vqa_normalize`, then the leave-one-annotator-out agreement.

    3 of 10 annotators agree: 7 subsets keep all 3 (-> 1), 3 keep 2 (-> 2/3): (7 + 3 * 2/3) / 10 = 0.9.
    """
    gts = [vqa_normalize(a) for a in check_answers(answers)]
    return _annotator_agreement(vqa_normalize(pred), gts) if isinstance(pred, str) else 0.0


def vqa_accuracy_lenient(pred: Any, answers: Sequence[str]) -> float:
    """VQA accuracy with vlmscale's lenient normalisation (`normalize_answer`)."""
    gts = [normalize_answer(a) for a in check_answers(answers)]
    return _annotator_agreement(normalize_answer(pred), gts) if isinstance(pred, str) else 0.0


def gqa_match(pred: Any, answer: str) -> float:
    """Official GQA: LLaVA's conversion keeps ``pred.rstrip('.').lower()`` and GQA's eval compares it with
    the answer as written (no other normalisation: "the table" != "table")."""
    answer = _check_text(answer, "the GQA answer")
    return float(isinstance(pred, str) and pred.rstrip(".").lower() == answer)


def exact_match(pred: Any, references: str | Sequence[str]) -> float:
    """Lenient exact match: right if `normalize_answer` makes it equal to any reference (a single string is
    one reference). Used by the synthetic suite, validation and the lenient GQA scoring."""
    refs = [references] if isinstance(references, str) else check_answers(references, "references")
    if not isinstance(pred, str):
        return 0.0
    norm = normalize_answer(pred)
    return float(any(norm == normalize_answer(r) for r in refs))


# ----------------------------------------------------------------------------------------------------------
# Yes / no (POPE, MME)
# ----------------------------------------------------------------------------------------------------------


def parse_yes_no(text: Any) -> str | None:
    """Official POPE (LLaVA's ``eval_pope.py``): the text before the first period, commas deleted, split on
    single spaces; "no" if a word is exactly "No", "no" or "not", otherwise "yes" (unparseable text counts
    as yes). ``None`` only for a prediction that is not a string."""
    if not isinstance(text, str):
        return None
    words = text.split(".")[0].replace(",", "").split(" ")
    return "no" if {"No", "no", "not"} & set(words) else "yes"


_WORD = re.compile(r"[a-z']+")


def parse_yes_no_lenient(text: Any) -> str | None:
    """Lenient: the first yes/no word decides ("not", "isn't", ... count as no); None when there is none."""
    if not isinstance(text, str):
        return None
    for word in _WORD.findall(text.lower()):
        if word == "yes":
            return "yes"
        if word in ("no", "not", "isn't", "aren't", "doesn't", "don't"):
            return "no"
    return None


def _yes_no_label(label: Any) -> str:
    value = str(label).strip().lower()
    if value not in ("yes", "no"):
        raise AnswersError(f"a yes/no label must be 'yes' or 'no', got {label!r}")
    return value


def pope_metrics(
    preds: Sequence[Any], labels: Sequence[str], parse: Callable[[Any], str | None] = parse_yes_no
) -> dict[str, float]:
    """POPE metrics with "yes" positive: accuracy, precision, recall, F1, yes-ratio (as ``eval_pope.py``).

    A prediction ``parse`` cannot read is counted wrong: a false negative when the label is yes, a false
    positive when it is no; ``yes_ratio`` counts the parsed "yes" answers. A ratio whose denominator is 0
    is reported as 0.
    """
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions but {len(labels)} labels")
    tp = fp = tn = fn = n_yes = n_unparseable = 0
    for pred, label in zip(preds, labels):
        label = _yes_no_label(label)
        answer = parse(pred)
        if answer is None:
            n_unparseable += 1
            answer = "no" if label == "yes" else "yes"
        else:
            n_yes += answer == "yes"
        tp += answer == "yes" and label == "yes"
        fp += answer == "yes" and label == "no"
        tn += answer == "no" and label == "no"
        fn += answer == "no" and label == "yes"
    n = len(labels)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "yes_ratio": n_yes / n if n else 0.0,
        "n": n,
        "n_unparseable": n_unparseable,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


MME_PERCEPTION = (
    "existence",
    "count",
    "position",
    "color",
    "posters",
    "celebrity",
    "scene",
    "landmark",
    "artwork",
    "OCR",
)
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def parse_mme_answer(pred: Any) -> str | None:
    """Official MME (``eval_tool/calculation.py``): the lower-cased answer is "yes"/"no", or "yes" (else
    "no") occurs in its first four characters; anything else is None ("other", wrong)."""
    if not isinstance(pred, str):
        return None
    text = pred.lower()
    if text in ("yes", "no"):
        return text
    head = text[:4]
    return "yes" if "yes" in head else "no" if "no" in head else None


def parse_mme_answer_lenient(pred: Any) -> str | None:
    """Lenient MME: the official rule on the answer with surrounding whitespace removed."""
    return parse_mme_answer(pred.strip()) if isinstance(pred, str) else None


def mme_metrics(
    records: Iterable[tuple[str, str, Any, str]], parse: Callable[[Any], str | None] = parse_mme_answer
) -> dict:
    """MME scores from (subtask, image_id, prediction, label) records.

    Per subtask: accuracy (share of questions right), accuracy+ (share of images with every question
    right) and score = 100 * (accuracy + accuracy+) in [0, 200]. ``perception`` / ``cognition`` sum the
    subtask scores of each kind (max 2000 / 800 on the full benchmark); ``total`` sums both.
    ``error = 1 - total / (200 * subtasks present)`` (the full benchmark divides by 2800).
    """
    per_task: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    n = n_unparseable = 0
    for subtask, image_id, pred, label in records:
        answer = parse(pred)
        n += 1
        n_unparseable += answer is None
        per_task[subtask][image_id].append(answer == _yes_no_label(label))
    subtasks = {}
    for subtask, images in sorted(per_task.items()):
        questions = [ok for oks in images.values() for ok in oks]
        acc = sum(questions) / len(questions)
        acc_plus = sum(all(oks) for oks in images.values()) / len(images)
        subtasks[subtask] = {"accuracy": acc, "accuracy_plus": acc_plus, "score": 100.0 * (acc + acc_plus)}
    perception = sum(v["score"] for k, v in subtasks.items() if k not in MME_COGNITION)
    cognition = sum(v["score"] for k, v in subtasks.items() if k in MME_COGNITION)
    total = perception + cognition
    return {
        "subtasks": subtasks,
        "perception": perception,
        "cognition": cognition,
        "total": total,
        "error": 1.0 - total / (200.0 * len(subtasks)) if subtasks else 1.0,
        "n": n,
        "n_unparseable": n_unparseable,
    }


# ----------------------------------------------------------------------------------------------------------
# Multiple choice (ScienceQA, MMBench, ...)
# ----------------------------------------------------------------------------------------------------------

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SCIENCEQA_OPTIONS = ("A", "B", "C", "D", "E")
_SCIENCEQA_PHRASE = re.compile(r"The answer is ([A-Z]).")


def scienceqa_letter(text: Any, n_choices: int) -> str | None:
    """Official ScienceQA (LLaVA's ``eval_science_qa.py``): the answer is exactly a letter A-E, or starts
    with "<letter>. ", or contains exactly one "The answer is <X><any character>"; the letter must be one of
    the question's first ``n_choices``. Anything else fails (None)."""
    if not isinstance(text, str):
        return None
    if text in _SCIENCEQA_OPTIONS:
        letter = text
    elif len(text) >= 3 and text[0] in _SCIENCEQA_OPTIONS and text[1:3] == ". ":
        letter = text[0]
    else:
        found = _SCIENCEQA_PHRASE.findall(text)
        letter = found[0] if len(found) == 1 else None
    return letter if letter in _SCIENCEQA_OPTIONS[:n_choices] else None


_MMBENCH_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_MMBENCH_SEPARATORS = str.maketrans({c: " " for c in ".()[],:;!*#{}"})


def mmbench_letter(text: Any, options: Sequence[str]) -> str | None:
    """Official MMBench matching without the LLM judge (VLMEvalKit's ``can_infer``, the ``exact_matching``
    mode): exactly one option letter among the answer's words (after ``.()[],:;!*#{}`` become spaces), else
    exactly one option whose lower-cased text occurs in the lower-cased answer (answers longer than twice
    the options' total length are not searched). Refusals and unmatched answers are None (wrong)."""
    if not isinstance(text, str):
        return None
    letters = LETTERS[: len(options)]
    if "Failed to obtain answer via API" not in text:  # (VLMEvalKit's API-failure marker skips this step)
        if any(refusal in text for refusal in _MMBENCH_REFUSALS):
            return None  # VLMEvalKit's "Z": a refusal, scored wrong
        words = text.translate(_MMBENCH_SEPARATORS).split()
        named = [c for c in letters if c in words]
        if len(named) == 1:
            return named[0]
        if not named and "Z" in words:
            return None
    lowered = text.lower()
    if len(lowered) > 2 * sum(len(o) for o in options):
        return None
    hits = [c for c, option in zip(letters, options) if option.lower() in lowered]
    return hits[0] if len(hits) == 1 else None


_LEADING_LETTER = re.compile(r"^\W{0,3}\(?([A-Z])(?:\)|\]|\.|:|,|\s*$)")
_ANSWER_PHRASE = re.compile(
    r"(?:answer|option|choice)\s*(?:is|would be|should be|:)?\s*:?\s*(?:option\s*)?[\(\[*]*([A-Z])(?![A-Za-z])",
    re.IGNORECASE,
)
_LETTER_TOKEN = re.compile(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])")


def _clean_option_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", str(text).lower()).split())


def extract_option_letter(text: Any, options: Sequence[str] | None = None) -> str | None:
    """Lenient option-letter extraction (vlmscale's rules): the letter a free-form answer picks, or None.

    Tolerates "B", "(B)", "B.", "B) text", "B. text", "The answer is B", "Answer: (C)", "**D**". With the
    options given, letters beyond them are rejected and an answer repeating exactly one option's text
    ("Paris" for "B. Paris") maps to it. A single standalone valid capital letter also counts ("I think B
    is right"), except the article "A" / pronoun "I" before a lower-case word.
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    valid = LETTERS[: len(options)] if options else LETTERS
    if not text:
        return None
    m = _LEADING_LETTER.match(text)
    if m and m.group(1) in valid:
        return m.group(1)
    m = _ANSWER_PHRASE.search(text)
    if m and m.group(1).upper() in valid and (m.group(1).isupper() or len(text) < 40):
        return m.group(1).upper()
    cleaned = _clean_option_text(text)
    if options:
        hits = [i for i, opt in enumerate(options) if cleaned and cleaned == _clean_option_text(opt)]
        if len(hits) == 1:
            return valid[hits[0]]
    candidates = set()
    for m in _LETTER_TOKEN.finditer(text):
        letter = m.group(1)
        if letter not in valid:
            continue
        if letter in ("A", "I") and re.match(r"\s+[a-z]", text[m.end() :]):
            continue
        candidates.add(letter)
    if len(candidates) == 1:
        return candidates.pop()
    if options:  # the answer contains exactly one option's full text
        padded = f" {cleaned} "
        hits = [
            i
            for i, o in enumerate(options)
            if _clean_option_text(o) and f" {_clean_option_text(o)} " in padded
        ]
        if len(hits) == 1:
            return valid[hits[0]]
    return None


def circular_accuracy(pairs: Iterable[tuple[str, bool]]) -> dict[str, float]:
    """MMBench circular evaluation from (question_group, correct) pairs, one per circular pass: a question
    is right only if every pass (options rotated) is right. Returns accuracy, questions and passes."""
    groups: dict[str, bool] = {}
    n_passes = 0
    for group, correct in pairs:
        n_passes += 1
        groups[group] = groups.get(group, True) and bool(correct)
    n = len(groups)
    return {"accuracy": sum(groups.values()) / n if n else 0.0, "n_questions": n, "n_passes": n_passes}


# ----------------------------------------------------------------------------------------------------------
# ChartQA, DocVQA, OCRBench
# ----------------------------------------------------------------------------------------------------------


def _official_float(text: str) -> float | None:
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def _relaxed(
    pred: Any,
    target: str,
    tolerance: float,
    number: Callable[[str], float | None],
    text: Callable[[str], str],
) -> float:
    target = _check_text(target, "the ChartQA target")
    if not isinstance(pred, str):
        return 0.0
    pred_num, target_num = number(pred), number(target)
    if pred_num is not None and target_num:  # a zero target falls back to the text comparison
        return float(abs(pred_num - target_num) / abs(target_num) <= tolerance)
    return float(text(pred) == text(target))


def relaxed_accuracy(pred: Any, target: str, tolerance: float = 0.05) -> float:
    """Official ChartQA relaxed accuracy (pix2struct / lmms-eval ``relaxed_correctness``): when both parse
    with Python's ``float`` (a trailing "%" divides by 100) and the target is non-zero, right within
    ``tolerance`` relative change; otherwise case-insensitive string equality, nothing stripped."""
    return _relaxed(pred, target, tolerance, _official_float, str.lower)


def _lenient_number(text: str) -> float | None:
    text = text.strip().rstrip(".").strip()
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1].strip(), 0.01
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    try:
        value = float(text) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def relaxed_accuracy_lenient(pred: Any, target: str, tolerance: float = 0.05) -> float:
    """Lenient relaxed accuracy: also tolerates surrounding spaces, thousands separators and a trailing
    period on either side ("1,000." = 1000, "canada." = "Canada")."""
    return _relaxed(pred, target, tolerance, _lenient_number, lambda t: t.strip().rstrip(".").strip().lower())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def anls(pred: Any, answers: Sequence[str], threshold: float = 0.5) -> float:
    """Official DocVQA ANLS (the RRC evaluation, as lmms-eval runs it): 1 - the smallest normalised edit
    distance over the answers, 0 when that falls below ``threshold`` (exactly 0.5 is kept). The distance is
    taken between lower-cased, whitespace-collapsed strings but divided by the longer RAW length."""
    answers = check_answers(answers)
    if not isinstance(pred, str):
        return 0.0
    det = " ".join(pred.strip().lower().split())
    distances = []
    for answer in answers:
        gt = " ".join(answer.strip().lower().split())
        length = max(len(answer.upper()), len(pred.upper()))
        distances.append(0.0 if length == 0 else levenshtein(gt, det) / length)
    score = 1.0 - min(distances)
    return 0.0 if score < threshold else score


def _ocr_text(text: str, handwritten_maths: bool) -> str:
    if handwritten_maths:
        return text.strip().replace("\n", " ").replace(" ", "")
    return text.lower().strip().replace("\n", " ")


def ocrbench_match(pred: Any, answers: Sequence[str], dataset_name: str = "") -> float:
    """Official OCRBench (MultimodalOCR's evaluation): right if any answer occurs in the prediction, both
    lower-cased, stripped, newlines as spaces; for handwritten maths (HME100k) case is kept and every space
    removed. An empty answer occurs in every prediction, as in the original."""
    answers = check_answers(answers)
    if not isinstance(pred, str):
        return 0.0
    maths = dataset_name == "HME100k"
    pred = _ocr_text(pred, maths)
    return float(any(_ocr_text(a, maths) in pred for a in answers))
