"""Differential tests: each default scorer against an independent transcription of the official script
(tests/eval/official_oracles.py) on thousands of generated answers per benchmark: punctuation, articles,
number words, contractions, thousands separators, decimals, percentages, case and whitespace.

Hypothesis hands each test a seed; every example draws a batch of answers from the
grammar below, so EXAMPLES x BATCH cases run per benchmark (derandomised: the same cases on every run). A
disagreement fails with the case printed.
"""

from __future__ import annotations

import random

import official_oracles as O
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlmscale.eval import scorers as S

EXAMPLES, BATCH = 40, 75  # 3000 generated cases per benchmark
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
rngs = st.integers(0, 2**32 - 1).map(random.Random)  # a seeded generator per example

WORDS = """dog Dog DOG the The a an A two Two three none None ten zero one whats what's What's dont don't let's
lets somebody'd somebodyd Im im ive yall oclock o'clock it's its t shirt t-shirt red white table canada
Canada no No NO not Not yes Yes YES nope there is""".split()
NUMBERS = "1,000 1,000,000 2.5 0.5 .5 10:30 3.14 45% 12 12. -3 1e3 0 100 1,2 2,,5 7.0 inf nan 1_000".split()
MARKS = list(";/[]\"{}()=+\\_-><@`,?!.':%*#")
SEPARATORS = [" ", "", "  ", "\t", "\n", ", ", ". ", "-", "'s ", " .", "..", "ß", "İ"]
CASES = [str, str.lower, str.upper, str.title, str.capitalize]
TOKENS = WORDS + NUMBERS + MARKS


def text(rng, pieces=TOKENS + TOKENS + SEPARATORS, most=8, cases=CASES) -> str:
    """A few pieces joined, in one of the cases."""
    return rng.choice(cases)("".join(rng.choices(pieces, k=rng.randint(0, most))))


# ---------------------------------------------------------------------------------------------- TextVQA / VQAv2


VARIANTS = [
    str.upper,
    str.title,
    lambda t: t + ".",
    lambda t: t + "?",
    lambda t: "the " + t,
    lambda t: "a " + t + " .",
    lambda t: t + "'s",
    lambda t: t.replace("'", ""),
    lambda t: t.replace("s", "'s", 1),
    lambda t: t.replace(" ", ", ", 1),
    lambda t: t.replace(" ", ",", 1),
    lambda t: t.replace(" ", "-", 1),
    lambda t: t.replace("-", " "),
    lambda t: " " + t + "\n",
]


def variant(rng, answer: str) -> str:
    """``answer`` spelled a little differently: the spellings where normalisations part ways."""
    for change in rng.sample(VARIANTS, rng.randint(1, 2)):
        answer = change(answer)
    return answer


def vqa_case(rng):
    base = text(rng)
    pool = [base, variant(rng, base), text(rng)]  # ten annotations from a few answers: some agree
    pick = rng.random()
    pred = variant(rng, rng.choice(pool)) if pick < 0.5 else rng.choice(pool) if pick < 0.8 else text(rng)
    return pred, rng.choices(pool, k=10)


@FUZZ
@given(rngs)
def test_vqa_accuracy_equals_m4c(rng):
    for pred, answers in (vqa_case(rng) for _ in range(BATCH)):
        assert S.vqa_accuracy(pred, answers) == pytest.approx(O.textvqa_score(pred, answers), abs=1e-12), (
            pred,
            answers,
        )


@FUZZ
@given(rngs)
def test_vqa_normalize_equals_evalai_processor(rng):
    for answer in (variant(rng, text(rng)) for _ in range(BATCH)):
        assert S.vqa_normalize(answer) == O.evalai_process(answer), answer


def test_vqa_normalize_keeps_the_32_period_limit():
    answer = "a." * 40 + "b"
    assert S.vqa_normalize(answer) == O.evalai_process(answer)
    assert S.vqa_normalize(answer).count(".") == 8  # 40 periods, 32 removed


# ---------------------------------------------------------------------------------------------- GQA


@FUZZ
@given(rngs)
def test_gqa_match_equals_llava_conversion_and_gqa_eval(rng):
    for _ in range(BATCH):
        target = text(rng, most=4, cases=[str.lower])
        for candidate in (text(rng), variant(rng, target), target + "..", target, " " + target):
            assert S.gqa_match(candidate, target) == float(O.gqa_correct(candidate, target)), (
                candidate,
                target,
            )


# ---------------------------------------------------------------------------------------------- POPE

YES_NO = ["Yes", "yes", "No", "no", "NO", "not", "Not", "there", "is", "a", "dog", "cat", ".", ",", " ", " "]
YES_NO += ["\n", "isn't", "no.", "No,", "nothing", "Nope", "maybe", ""]


@FUZZ
@given(rngs)
def test_pope_equals_eval_pope(rng):
    texts = [text(rng, YES_NO, 9, [str]) for _ in range(BATCH)]
    labels = rng.choices(["yes", "no"], k=BATCH)
    for answer in texts:
        assert S.parse_yes_no(answer) == O.pope_answer(answer), answer
    ours, theirs = S.pope_metrics(texts, labels), O.pope_counts(texts, labels)
    for key in ("tp", "fp", "tn", "fn"):
        assert ours[key] == theirs[key], key
    for key in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-12), key
    assert ours["n_unparseable"] == 0  # the official rule reads every text (as yes, failing all else)


# ---------------------------------------------------------------------------------------------- DocVQA


def near(rng, answer: str) -> str:
    """A reference a few edits from ``answer``: scores near the 0.5 threshold are the risky ones."""
    cut = rng.randint(0, len(answer))
    return rng.choice(CASES)(answer[:cut] + rng.choice(["", "x", "  ", "ab", "ß", "İ", "\n", "Z9"]))


@FUZZ
@given(rngs)
def test_anls_equals_rrc_evaluation(rng):
    for _ in range(BATCH):
        pred = text(rng)
        answers = [
            near(rng, pred) if rng.random() < 0.7 else variant(rng, pred) for _ in range(rng.randint(1, 3))
        ]
        assert S.anls(pred, answers) == pytest.approx(O.docvqa_anls(pred, answers), abs=1e-12), (
            pred,
            answers,
        )


# ---------------------------------------------------------------------------------------------- ScienceQA

LETTER_PIECES = [
    "A",
    "B",
    "C",
    "D",
    "E",
    "F",
    "Z",
    "a",
    "b",
    ". ",
    ".",
    " ",
    "\n",
    "(",
    ")",
    ",",
    "cat",
    "B.",
]
LETTER_PIECES += ["The answer is ", "The answer is", "the answer is ", "Answer: ", "is"]


@FUZZ
@given(rngs)
def test_scienceqa_equals_eval_science_qa(rng):
    for _ in range(BATCH):
        answer, n_choices = text(rng, LETTER_PIECES, 6, [str]), rng.randint(2, 5)
        index = O.scienceqa_choice(answer, n_choices)
        expected = None if index < 0 else "ABCDE"[index]
        assert S.scienceqa_letter(answer, n_choices) == expected, (answer, n_choices)


# ---------------------------------------------------------------------------------------------- ChartQA

NUMBER_PIECES = list("0123456789") + [".", "%", "-", "+", "e", ",", " ", "_", "1,000", "inf", "nan", "\n"]
NUMBER_PIECES += ["canada", "Canada", "canada.", "12", "12.5", "0", "0.0"]


@FUZZ
@given(rngs)
def test_relaxed_accuracy_equals_relaxed_correctness(rng):
    for _ in range(BATCH):
        pred, target = text(rng, NUMBER_PIECES, 6), text(rng, NUMBER_PIECES, 6)
        for p in (pred, target, variant(rng, target), target.replace(",", "")):
            assert S.relaxed_accuracy(p, target) == float(O.chartqa_correct(p, target)), (p, target)


# ---------------------------------------------------------------------------------------------- MME

MME_PIECES = ["yes", "no", "Yes", "No", " ", ",", ".", "not", "i", "t", "know", "\n"]


@FUZZ
@given(rngs)
def test_mme_parse_equals_calculation(rng):
    for answer in (text(rng, MME_PIECES, 5) for _ in range(BATCH)):
        label = O.mme_label(answer)
        assert S.parse_mme_answer(answer) == (None if label == "other" else label), answer


@FUZZ
@given(rngs)
def test_mme_subtask_score_equals_calculation(rng):
    pairs = [
        tuple((text(rng, MME_PIECES, 5), rng.choice(["Yes", "No"])) for _ in range(2))
        for _ in range(rng.randint(1, BATCH))
    ]
    records = [("count", f"{i}.jpg", pred, label) for i, pair in enumerate(pairs) for pred, label in pair]
    ours = S.mme_metrics(records)["subtasks"]["count"]["score"]
    assert ours == pytest.approx(O.mme_subtask_score(pairs), abs=1e-9)


# ---------------------------------------------------------------------------------------------- MMBench

OPTION_WORDS = ["red", "blue", "dark blue", "cat", "A cat", "Paris", "B", "7", "seven", "none of these"]
CHOICE_PIECES = ["A", "B", "C", "D", "E", "Z", " ", " ", "(", ")", ".", ":", "**", "\n", "The answer is "]
CHOICE_PIECES += OPTION_WORDS + ["I think", "Cannot determine the answer", "option", "a"]


@FUZZ
@given(rngs)
def test_mmbench_letter_equals_can_infer(rng):
    for _ in range(BATCH):
        options = rng.sample(OPTION_WORDS, rng.randint(2, 5))
        answer = text(rng, CHOICE_PIECES, 7, [str])
        found = O.mmbench_choice(answer, options)
        expected = found if found and found != "Z" else None
        assert S.mmbench_letter(answer, options) == expected, (answer, options)


@FUZZ
@given(rngs)
def test_circular_accuracy_equals_mmbench_grouping(rng):
    for _ in range(BATCH // 5):
        results = {rng.randint(0, 6) + 1_000_000 * rng.randint(0, 3): rng.random() < 0.7 for _ in range(8)}
        pairs = [(str(index % 1_000_000), right) for index, right in results.items()]
        assert S.circular_accuracy(pairs)["accuracy"] == pytest.approx(O.mmbench_circular(results))


# ---------------------------------------------------------------------------------------------- OCRBench


@FUZZ
@given(rngs)
def test_ocrbench_equals_multimodalocr(rng):
    for _ in range(BATCH):
        pred, dataset = text(rng), rng.choice(["IIIT5K", "HME100k"])
        answers = [
            near(rng, pred) if rng.random() < 0.5 else text(rng, most=3) for _ in range(rng.randint(1, 3))
        ]
        expected = O.ocrbench_correct(pred, list(answers), dataset)
        assert S.ocrbench_match(pred, answers, dataset) == float(expected), (pred, answers, dataset)
        if len(answers) == 1:  # the original's single-string form scores the same
            assert expected == O.ocrbench_correct(pred, answers[0], dataset)
