"""Benchmark scorers: answer normalisation and the standard metric of each benchmark.

Everything here is pure Python on strings (no torch), so scorers can be checked against hand-computed values.

Conventions
- A scorer for one prediction returns a float in [0, 1] (1 = right).
- Parsers (`parse_yes_no`, `extract_option_letter`) return ``None`` when a prediction cannot be parsed; the
  task scorers count such predictions as wrong *and* report how many there were (``n_unparseable``).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

# ----------------------------------------------------------------------------------------------------------
# VQA answer normalisation (the rules of the official VQA v2 / TextVQA evaluation)
# ----------------------------------------------------------------------------------------------------------

# Punctuation handled by the VQA rules; the period is treated separately (kept inside decimals) and the
# apostrophe and colon are left alone (contractions, clock times).
_VQA_PUNCT = [
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
_PERIOD_NOT_DECIMAL = re.compile(r"\.(?!\d)")
_ARTICLES = {"a", "an", "the"}
_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
# Apostrophe-less spellings -> the canonical contraction (the official list, abridged to the common forms
# plus its double contractions).
_CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Id've": "I'd've",
    "I'dve": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    "shant": "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebodyd": "somebody'd",
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    "yall": "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}


def _strip_punctuation(text: str) -> str:
    """VQA punctuation rule: a mark touching a space, or any text with a digit-comma-digit, loses the mark;
    otherwise the mark becomes a space ("black-and-white" -> "black and white"). Periods that are not
    decimal points are removed ("dog." -> "dog", "2.5" stays)."""
    out = text
    has_digit_comma = _COMMA_BETWEEN_DIGITS.search(text) is not None
    for p in _VQA_PUNCT:
        if (p + " " in text or " " + p in text) or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_NOT_DECIMAL.sub("", out)


def _digits_articles_contractions(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = _NUMBER_WORDS.get(word, word)
        if word in _ARTICLES:
            continue
        words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def normalize_answer(text: str) -> str:
    """The official VQA answer normalisation: whitespace, punctuation, lower case, number words -> digits
    (zero..ten, "none" -> "0"), articles dropped, apostrophe-less contractions restored.

    >>> normalize_answer("Two dogs.")
    '2 dogs'
    >>> normalize_answer("A dog")
    'dog'
    """
    text = str(text).replace("\n", " ").replace("\t", " ").strip()
    return _digits_articles_contractions(_strip_punctuation(text))


def vqa_accuracy(prediction: str, annotator_answers: Sequence[str]) -> float:
    """VQA accuracy: for each annotator left out in turn, min(1, #other annotators agreeing / 3); the mean
    over the (10 choose 9) subsets. Prediction and annotations are always normalised the same way (as
    LLaVA's TextVQA evaluator does; the original VQA script skips normalisation when all annotators agree).

    With 10 annotators of which 3 agree with the prediction: 7 subsets keep all 3 (-> 1) and 3 keep 2
    (-> 2/3), so the accuracy is (7 + 3 * 2/3) / 10 = 0.9.
    """
    gts = [normalize_answer(a) for a in annotator_answers]
    if not gts:
        return 0.0
    pred = normalize_answer(prediction)
    if len(gts) == 1:
        return float(pred == gts[0])
    matches = sum(g == pred for g in gts)
    total = 0.0
    for g in gts:
        others = matches - (g == pred)
        total += min(1.0, others / 3.0)
    return total / len(gts)


def exact_match(prediction: str, references: str | Sequence[str]) -> float:
    """GQA-style exact match after the VQA normalisation; right if it equals any reference."""
    refs = [references] if isinstance(references, str) else list(references)
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(r) for r in refs))


# ----------------------------------------------------------------------------------------------------------
# Yes / no (POPE, MME)
# ----------------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z']+")


def parse_yes_no(prediction: str) -> str | None:
    """'yes' / 'no' from a free-form answer, or None if neither can be read.

    The first yes/no word decides ("Yes, there is." -> yes, "No." -> no, "There is no dog" -> no); "not"
    counts as no when no yes/no word precedes it. Anything else (empty, "maybe") is unparseable.
    """
    for word in _WORD.findall(str(prediction).lower()):
        if word == "yes":
            return "yes"
        if word in ("no", "not", "isn't", "aren't", "doesn't", "don't"):
            return "no"
    return None


def pope_metrics(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """POPE metrics with 'yes' as the positive class: accuracy, precision, recall, F1, yes-ratio.

    An unparseable prediction is counted wrong: as a false negative when the label is yes and as a false
    positive when the label is no (the worst case for each). ``yes_ratio`` counts only parsed "yes" answers.
    """
    if len(predictions) != len(labels):
        raise ValueError("predictions and labels differ in length")
    tp = fp = tn = fn = n_yes = n_unparseable = 0
    for pred, label in zip(predictions, labels):
        label = str(label).strip().lower()
        if label not in ("yes", "no"):
            raise ValueError(f"POPE label must be yes/no, got {label!r}")
        answer = parse_yes_no(pred)
        if answer is None:
            n_unparseable += 1
            answer = "no" if label == "yes" else "yes"
        else:
            n_yes += answer == "yes"
        if answer == "yes":
            tp += label == "yes"
            fp += label == "no"
        else:
            tn += label == "no"
            fn += label == "yes"
    n = len(labels)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
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


def parse_mme_answer(prediction: str) -> str | None:
    """MME's rule: the whole answer is yes/no, or yes/no appears in its first four characters; else None."""
    text = str(prediction).strip().lower()
    if text in ("yes", "no"):
        return text
    head = text[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return None


def mme_metrics(records: Iterable[tuple[str, str, str, str]]) -> dict:
    """MME scores from (subtask, image_id, prediction, label) records.

    Per subtask: accuracy (share of questions right), accuracy+ (share of images with *both* questions
    right) and score = 100 * (accuracy + accuracy+) in [0, 200]. ``perception`` / ``cognition`` sum the
    scores of the subtasks of each kind (max 2000 / 800 on the full benchmark); ``total`` sums both.

    Normalisation to an error in [0, 1]: ``error = 1 - total / (200 * number of subtasks present)``, i.e.
    one minus the mean over subtasks of (accuracy + accuracy+) / 2; the full benchmark divides by 2800.
    Unparseable answers (neither yes nor no) are wrong.
    """
    per_task: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    n = n_unparseable = 0
    for subtask, image_id, pred, label in records:
        answer = parse_mme_answer(pred)
        n += 1
        n_unparseable += answer is None
        per_task[subtask][image_id].append(answer == str(label).strip().lower())
    subtasks = {}
    for subtask, images in sorted(per_task.items()):
        questions = [ok for oks in images.values() for ok in oks]
        acc = sum(questions) / len(questions)
        acc_plus = sum(all(oks) for oks in images.values()) / len(images)
        subtasks[subtask] = {"accuracy": acc, "accuracy_plus": acc_plus, "score": 100.0 * (acc + acc_plus)}
    perception = sum(v["score"] for k, v in subtasks.items() if k not in MME_COGNITION)
    cognition = sum(v["score"] for k, v in subtasks.items() if k in MME_COGNITION)
    total = perception + cognition
    error = 1.0 - total / (200.0 * len(subtasks)) if subtasks else 1.0
    return {
        "subtasks": subtasks,
        "perception": perception,
        "cognition": cognition,
        "total": total,
        "error": error,
        "n": n,
        "n_unparseable": n_unparseable,
    }


# ----------------------------------------------------------------------------------------------------------
# Multiple choice
# ----------------------------------------------------------------------------------------------------------

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_LEADING_LETTER = re.compile(r"^\W{0,3}\(?([A-Z])(?:\)|\]|\.|:|,|\s*$)")
_ANSWER_PHRASE = re.compile(
    r"(?:answer|option|choice)\s*(?:is|would be|should be|:)?\s*:?\s*(?:option\s*)?[\(\[*]*([A-Z])(?![A-Za-z])",
    re.IGNORECASE,
)
_LETTER_TOKEN = re.compile(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])")


def _clean_option_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", str(text).lower()).split())


def extract_option_letter(prediction: str, options: Sequence[str] | None = None) -> str | None:
    """The option letter a free-form answer picks, or None if it cannot be told.

    Tolerates "B", "(B)", "B.", "B) text", "B. text", "The answer is B", "Answer: (C)", "**D**". When the
    options are given, letters beyond them are rejected and an answer that repeats exactly one option's
    text ("Paris" for "B. Paris") maps to that option. A single standalone capital letter among the valid
    ones also counts ("I think B is right"), except the article "A" before a lower-case word.
    """
    text = str(prediction).strip()
    valid = LETTERS[: len(options)] if options else LETTERS
    if not text:
        return None

    m = _LEADING_LETTER.match(text)
    if m and m.group(1) in valid:
        return m.group(1)
    m = _ANSWER_PHRASE.search(text)
    if m and m.group(1).upper() in valid and (m.group(1).isupper() or len(text) < 40):
        return m.group(1).upper()
    if options:
        cleaned = _clean_option_text(text)
        hits = [i for i, opt in enumerate(options) if cleaned and cleaned == _clean_option_text(opt)]
        if len(hits) == 1:
            return valid[hits[0]]
    candidates = set()
    for m in _LETTER_TOKEN.finditer(text):
        letter = m.group(1)
        if letter not in valid:
            continue
        rest = text[m.end() :]
        if letter in ("A", "I") and re.match(r"\s+[a-z]", rest):
            continue  # the article "A" / pronoun "I", not an option
        candidates.add(letter)
    if len(candidates) == 1:
        return candidates.pop()
    if options:  # the answer contains exactly one option's full text
        cleaned = f" {_clean_option_text(text)} "
        hits = [
            i
            for i, opt in enumerate(options)
            if _clean_option_text(opt) and f" {_clean_option_text(opt)} " in cleaned
        ]
        if len(hits) == 1:
            return valid[hits[0]]
    return None


def circular_accuracy(records: Iterable[tuple[str, bool]]) -> dict[str, float]:
    """MMBench circular evaluation from (question_group, correct) records, one per circular pass.

    A question counts as right only if every pass of it (the options rotated) is right. Returns the
    circular accuracy, the number of questions and of passes.
    """
    groups: dict[str, bool] = {}
    n_passes = 0
    for group, correct in records:
        n_passes += 1
        groups[group] = groups.get(group, True) and bool(correct)
    n = len(groups)
    return {"accuracy": sum(groups.values()) / n if n else 0.0, "n_questions": n, "n_passes": n_passes}


# ----------------------------------------------------------------------------------------------------------
# ChartQA, DocVQA, OCRBench
# ----------------------------------------------------------------------------------------------------------


def _to_number(text: str) -> float | None:
    text = str(text).strip().rstrip(".").strip()
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


def relaxed_accuracy(prediction: str, target: str, tolerance: float = 0.05) -> float:
    """ChartQA relaxed accuracy: numeric answers are right within ``tolerance`` relative error of a
    non-zero target ("12.4" for 12 is right, 13 is not); otherwise case-insensitive exact match.
    Percent signs ("45%" = 0.45), thousands separators and a trailing period are tolerated."""
    pred_num, target_num = _to_number(prediction), _to_number(target)
    if pred_num is not None and target_num:  # a zero target falls back to exact match, as in the original
        return float(abs(pred_num - target_num) / abs(target_num) <= tolerance)
    return float(str(prediction).strip().rstrip(".").strip().lower() == str(target).strip().lower())


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


def anls(prediction: str, references: Sequence[str], threshold: float = 0.5) -> float:
    """DocVQA ANLS for one question: max over references of 1 - normalised Levenshtein distance, where a
    distance at or above ``threshold`` scores 0. Strings are lower-cased with whitespace collapsed."""

    def norm(s: str) -> str:
        return " ".join(str(s).lower().split())

    pred = norm(prediction)
    best = 0.0
    for ref in references:
        ref = norm(ref)
        longest = max(len(pred), len(ref))
        if longest == 0:
            best = max(best, 1.0)
            continue
        distance = levenshtein(pred, ref) / longest
        best = max(best, 1.0 - distance if distance < threshold else 0.0)
    return best


def ocrbench_match(prediction: str, answers: str | Sequence[str], dataset_name: str = "") -> float:
    """OCRBench: right if any reference occurs in the prediction as a substring (case-insensitive, newlines
    as spaces). For handwritten maths (HME100k) spaces are removed and case is kept, as in the original."""
    refs = [answers] if isinstance(answers, str) else list(answers)
    pred = str(prediction)
    if dataset_name == "HME100k":
        pred = pred.strip().replace("\n", " ").replace(" ", "")
        refs = [str(r).strip().replace("\n", " ").replace(" ", "") for r in refs]
        return float(any(r and r in pred for r in refs))
    pred = pred.lower().strip().replace("\n", " ")
    refs = [str(r).lower().strip().replace("\n", " ") for r in refs]
    return float(any(r and r in pred for r in refs))
