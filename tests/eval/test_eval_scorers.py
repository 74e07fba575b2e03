"""Every scorer against values computed by hand (the arithmetic is in the comments): the official rules
first, then the lenient variants, then bad inputs."""

import pytest

from vlmscale.eval import scorers as S


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("two", "2"),
        ("Two dogs.", "2 dogs"),
        ("a dog", "dog"),
        ("The Dog!", "dog"),
        ("an apple", "apple"),
        ("dog.", "dog"),  # trailing period dropped
        ("2.5", "2.5"),  # decimal point kept
        ("none", "0"),
        ("ten.", "10"),
        ("dont", "don't"),  # contraction restored
        ("isnt it", "isn't it"),
        ("black-and-white", "black and white"),  # hyphen not touching a space -> space
        ("yes, it is", "yes it is"),  # comma touching a space -> removed
        ("1,000", "1000"),  # digit-comma-digit -> commas removed
        ("  Red\tand\nblue ", "red and blue"),
        ("10:30", "10:30"),  # colon is not VQA punctuation
    ],
)
def test_normalize_answer(raw, expected):
    """The lenient normalisation (validation, lenient scorings)."""
    assert S.normalize_answer(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Two dogs.", "2 dogs"),
        ("what's", "what 's"),  # "'s" split off its word before anything else
        ("whats", "what's"),  # ... while the contraction table restores this spelling
        ("red, white", "red white"),  # "," deleted first: no comma is left for the punctuation rule
        ("red,white", "redwhite"),
        ("Is it?", "is it"),
        ("1,000", "1000"),
        ("black-and-white", "black and white"),
        ("somebody'd", "somebodyd"),  # the official table's reversed entry
        ("Im", "im"),  # capitalised table keys never match
        ("2.5 dogs.", "2.5 dogs"),
    ],
)
def test_vqa_normalize_official(raw, expected):
    assert S.vqa_normalize(raw) == expected


def test_vqa_accuracy_annotator_subsets():
    others = ["cat"] * 7
    # 3 of 10 agree: 7 subsets keep all 3 (min(1, 3/3) = 1), 3 subsets keep 2 (2/3): (7 + 2) / 10 = 0.9
    assert S.vqa_accuracy("dog", ["dog"] * 3 + others) == pytest.approx(0.9)
    # 2 of 10: 8 subsets at 2/3, 2 subsets at 1/3 -> (16/3 + 2/3) / 10 = 0.6
    assert S.vqa_accuracy("dog", ["dog"] * 2 + ["cat"] * 8) == pytest.approx(0.6)
    # 1 of 10: 9 subsets at 1/3, 1 at 0 -> 0.3
    assert S.vqa_accuracy("dog", ["dog"] + ["cat"] * 9) == pytest.approx(0.3)
    # 4 of 10: every subset keeps at least 3 -> 1
    assert S.vqa_accuracy("dog", ["dog"] * 4 + ["cat"] * 6) == pytest.approx(1.0)
    assert S.vqa_accuracy("bird", ["dog"] * 10) == 0.0
    # normalisation applies to both sides: "two" == "2", "a dog" == "dog", trailing punctuation
    assert S.vqa_accuracy("two", ["2"] * 3 + others) == pytest.approx(0.9)
    assert S.vqa_accuracy("A dog.", ["dog", "dog", "the dog"] + others) == pytest.approx(0.9)


def test_vqa_accuracy_official_differs_from_lenient():
    # "what's" -> "what 's" officially; "whats" -> "what's" (contraction) matches only the lenient form:
    # official: 1 agreeing annotator -> 0.3; lenient: 4 agree -> 1.0
    answers = ["whats"] * 3 + ["what's"] + ["cat"] * 6
    assert S.vqa_accuracy("what's", answers) == pytest.approx(0.3)
    assert S.vqa_accuracy_lenient("what's", answers) == pytest.approx(1.0)
    # "red, white" -> "red white" but "red,white" -> "redwhite" officially: 0 agree
    answers = ["red,white"] * 3 + ["cat"] * 7
    assert S.vqa_accuracy("red, white", answers) == 0.0
    assert S.vqa_accuracy_lenient("red, white", answers) == pytest.approx(0.9)


@pytest.mark.parametrize(
    "pred, answer, expected",
    [
        ("Red.", "red", 1.0),  # trailing periods stripped, lower-cased
        ("table..", "table", 1.0),
        ("the table", "table", 0.0),  # no article removal
        ("none", "0", 0.0),  # no number words
        ("t shirt", "t-shirt", 0.0),  # no punctuation rule
        (" red", "red", 0.0),  # no whitespace strip
        ("2", "two", 0.0),
    ],
)
def test_gqa_match(pred, answer, expected):
    assert S.gqa_match(pred, answer) == expected


def test_exact_match_lenient():
    assert S.exact_match("the table", ["table"]) == 1.0 and S.exact_match("none", ["0"]) == 1.0
    assert S.exact_match("Yes.", "yes") == 1.0
    assert S.exact_match("a dog", "dog") == 1.0
    assert S.exact_match("two", ["2"]) == 1.0
    assert S.exact_match("dogs", "dog") == 0.0
    assert S.exact_match("", "dog") == 0.0


@pytest.mark.parametrize(
    "pred, official, lenient",
    [
        ("Yes", "yes", "yes"),
        ("yes.", "yes", "yes"),
        ("No, there is not.", "no", "no"),
        ("There is no dog.", "no", "no"),
        ("It is not a cat", "no", "no"),
        ("maybe", "yes", None),  # official: anything without a no-word is a yes
        ("", "yes", None),
        ("NO", "yes", "no"),  # official: only "No", "no", "not" count
    ],
)
def test_parse_yes_no_official_and_lenient(pred, official, lenient):
    assert S.parse_yes_no(pred) == official
    assert S.parse_yes_no_lenient(pred) == lenient


@pytest.mark.parametrize(
    "pred, expected",
    [
        ("Yes. There is no dog.", "yes"),  # the first sentence only
        ("No\nthere is none", "yes"),  # split on single spaces: "No\nthere" is one word
        ("There isn't one", "yes"),
        (None, None),  # not text: wrong, never read as a string
    ],
)
def test_parse_yes_no_official(pred, expected):
    assert S.parse_yes_no(pred) == expected


def test_pope_metrics_official_by_hand():
    preds = ["yes", "no", "Yes, there is", "maybe", None]
    labels = ["yes", "yes", "yes", "no", "no"]
    m = S.pope_metrics(preds, labels)
    # TP: 1, 3; FN: 2; "maybe" reads as yes with label no: FP; None is wrong: with label no, a FP
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 2, 0)
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))  # = 4/7
    assert m["yes_ratio"] == pytest.approx(3 / 5)  # yes, "Yes, there is", "maybe"
    assert m["n_unparseable"] == 1


def test_pope_metrics_lenient_by_hand():
    preds = ["yes", "no", "Yes, there is", "maybe", "no"]
    labels = ["yes", "yes", "yes", "no", "no"]
    m = S.pope_metrics(preds, labels, S.parse_yes_no_lenient)
    # TP: 1, 3; FN: 2; "maybe" with label no counts as a false positive; TN: 5
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 1)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == pytest.approx(2 / 5)  # parsed "yes" answers only
    assert m["n_unparseable"] == 1


def test_mme_metrics_by_hand():
    records = [
        ("existence", "1.jpg", "Yes", "yes"),  # right
        ("existence", "1.jpg", "No.", "no"),  # right
        ("existence", "2.jpg", "no", "yes"),  # wrong
        ("existence", "2.jpg", "no", "no"),  # right
        ("code_reasoning", "3.png", "I'm not sure", "yes"),  # unparseable -> wrong
        ("code_reasoning", "3.png", "no", "no"),  # right
    ]
    m = S.mme_metrics(records)
    ex = m["subtasks"]["existence"]
    # accuracy 3/4, accuracy+ 1/2 (only image 1 has both right) -> 100 * 1.25 = 125
    assert ex["accuracy"] == pytest.approx(0.75)
    assert ex["accuracy_plus"] == pytest.approx(0.5)
    assert ex["score"] == pytest.approx(125.0)
    # accuracy 1/2, accuracy+ 0 -> 50
    assert m["subtasks"]["code_reasoning"]["score"] == pytest.approx(50.0)
    assert m["perception"] == pytest.approx(125.0)
    assert m["cognition"] == pytest.approx(50.0)
    assert m["total"] == pytest.approx(175.0)
    # error = 1 - 175 / (200 * 2 subtasks)
    assert m["error"] == pytest.approx(1 - 175 / 400)
    assert m["n_unparseable"] == 1


def test_mme_answer_parse_first_four_chars():
    assert S.parse_mme_answer("Yes, it is") == "yes"
    assert S.parse_mme_answer("No") == "no"
    assert S.parse_mme_answer("The answer is yes") is None  # MME only looks at the start
    assert S.parse_mme_answer("Nothing") == "no"  # "no" within the first four characters
    assert S.parse_mme_answer("   no") is None  # the official rule does not strip
    assert S.parse_mme_answer_lenient("   no") == "no"
    assert S.parse_mme_answer(None) is None


def test_mme_none_prediction_is_wrong():
    m = S.mme_metrics([("count", "1.jpg", None, "no"), ("count", "1.jpg", "no", "no")])
    # accuracy 1/2, accuracy+ 0 -> 50; the None is not read as "None" -> "no"
    assert m["subtasks"]["count"]["score"] == pytest.approx(50.0) and m["n_unparseable"] == 1


OPTIONS = ["cat", "Paris", "blue sky", "seven"]


@pytest.mark.parametrize(
    "pred, expected",
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("B. Paris", "B"),
        ("B) Paris", "B"),
        ("The answer is B", "B"),
        ("The answer is (C).", "C"),
        ("Answer: D", "D"),
        ("**D**", "D"),
        ("I think C is right", "C"),
        ("Paris", "B"),  # the text of exactly one option
        ("blue sky.", "C"),
        ("A", "A"),
        ("A bird", None),  # the article, not option A
        ("A cat", "A"),  # ... though "cat" is option A's text
        ("E", None),  # not one of the 4 options
        ("", None),
        ("I don't know", None),
        ("B or C", None),  # ambiguous
    ],
)
def test_extract_option_letter(pred, expected):
    """The lenient extraction (opt-in)."""
    assert S.extract_option_letter(pred, OPTIONS) == expected


@pytest.mark.parametrize(
    "pred, n_choices, expected",
    [
        ("B", 4, "B"),
        ("B. Paris", 4, "B"),
        ("B.Paris", 4, None),  # the letter must be followed by ". "
        ("The answer is C.", 4, "C"),
        ("The answer is C,", 4, "C"),  # any character after the letter
        ("The answer is C", 4, None),  # ... but one is needed
        ("The answer is A. The answer is B.", 4, None),  # two matches: failed
        ("E", 4, None),  # beyond the question's choices
        ("(B)", 4, None),
        ("b", 4, None),
        (" B", 4, None),
    ],
)
def test_scienceqa_letter_official(pred, n_choices, expected):
    assert S.scienceqa_letter(pred, n_choices) == expected


@pytest.mark.parametrize(
    "pred, expected",
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B. Paris", "B"),
        ("The answer is B", "B"),
        ("**D**", "D"),
        ("Paris", "B"),  # no letter: the text of exactly one option
        ("A cat", "A"),  # the letter A among the words
        ("B or C", None),  # two letters, and no option's text
        ("blue sky and seven", None),  # two options' texts
        ("Cannot determine the answer", None),  # a refusal
        ("I don't know", None),
    ],
)
def test_mmbench_letter_official(pred, expected):
    assert S.mmbench_letter(pred, OPTIONS) == expected


def test_extract_option_letter_without_options():
    assert S.extract_option_letter("(E) something") == "E"


def test_circular_accuracy_needs_every_pass():
    records = (
        [("q1", True)] * 4 + [("q2", True), ("q2", True), ("q2", False), ("q2", True)] + [("q3", True)] * 2
    )
    m = S.circular_accuracy(records)
    # q1 and q3 right in every pass, q2 wrong once -> 2 / 3
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["n_questions"] == 3 and m["n_passes"] == 10


@pytest.mark.parametrize(
    "pred, target, expected",
    [
        ("12.4", "12", 1.0),  # 3.3% off
        ("12.7", "12", 0.0),  # 5.8% off
        ("12.6", "12", 1.0),  # exactly 5% off is still right
        ("45%", "0.45", 1.0),
        ("12.", "12", 1.0),  # float("12.") = 12
        ("0.01", "0", 0.0),  # a zero target needs the exact string
        ("0", "0", 1.0),
        ("Yes", "yes", 1.0),
        ("Cat", "dog", 0.0),
        ("canada.", "canada.", 1.0),  # nothing stripped from either side
        ("canada.", "Canada", 0.0),
        ("1,000", "1000", 0.0),  # float() does not read thousands separators
        (" 12 ", "12", 1.0),  # ... but does skip surrounding spaces
    ],
)
def test_relaxed_accuracy(pred, target, expected):
    assert S.relaxed_accuracy(pred, target) == expected


@pytest.mark.parametrize(
    "pred, target, expected",
    [
        ("1,000", "1000", 1.0),
        ("12.", "12", 1.0),
        ("canada.", "Canada", 1.0),
        ("canada.", "canada.", 1.0),
        ("12.7", "12", 0.0),
    ],
)
def test_relaxed_accuracy_lenient(pred, target, expected):
    assert S.relaxed_accuracy_lenient(pred, target) == expected


def test_anls_by_hand():
    assert S.levenshtein("kitten", "sitting") == 3
    assert S.anls("hello", ["hallo"]) == pytest.approx(1 - 1 / 5)
    assert S.anls("abc", ["xyz"]) == 0.0
    assert S.anls("ab", ["ac"]) == 0.5  # exactly 0.5 is kept (the test is "< 0.5")
    assert S.anls("26", ["25"]) == 0.5
    assert S.anls("abc", ["abd", "xyz"]) == pytest.approx(1 - 1 / 3)
    assert S.anls(" Hello  World ", ["hello world"]) == 1.0
    # the distance is between normalised strings, the length is the raw one: 1 - 1/7
    assert S.anls("  abc  ", ["abd"]) == pytest.approx(1 - 1 / 7)
    assert S.anls("abcd", ["abxy", "abcf"]) == pytest.approx(0.75)  # max over references


def test_ocrbench_match():
    assert S.ocrbench_match("The text reads HELLO world", ["hello"]) == 1.0
    assert S.ocrbench_match("goodbye", ["hello", "bye"]) == 1.0
    assert S.ocrbench_match("hell", ["hello"]) == 0.0
    assert S.ocrbench_match("x ^ 2 + 1", ["x^2+1"], "HME100k") == 1.0
    assert S.ocrbench_match("X^2", ["x^2"], "HME100k") == 0.0  # handwritten maths keeps case
    assert S.ocrbench_match("anything", [""]) == 1.0  # an empty answer occurs everywhere, as in the original


# ---------------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("pred", [None, 0, 1.0, ["0"]])
def test_non_string_predictions_are_wrong(pred):
    assert S.vqa_accuracy(pred, ["0"] * 10) == 0.0  # None used to become "None" -> "0" -> right
    assert S.vqa_accuracy_lenient(pred, ["0"] * 10) == 0.0
    assert S.exact_match(pred, ["0"]) == 0.0
    assert S.gqa_match(pred, "0") == 0.0
    assert S.anls(pred, ["0"]) == 0.0
    assert S.relaxed_accuracy(pred, "0") == 0.0
    assert S.ocrbench_match(pred, ["0"]) == 0.0
    assert S.parse_yes_no(pred) is None and S.parse_mme_answer(pred) is None
    assert S.scienceqa_letter(pred, 4) is None and S.mmbench_letter(pred, OPTIONS) is None
    assert S.extract_option_letter(pred, OPTIONS) is None


@pytest.mark.parametrize("answers", ["hello", [], None, ["ok", None], [1]])
def test_answers_must_be_a_non_empty_list_of_strings(answers):
    for score in (S.vqa_accuracy, S.vqa_accuracy_lenient, S.anls, S.ocrbench_match):
        with pytest.raises(S.AnswersError, match="non-empty list of strings"):
            score("hello", answers)


def test_single_targets_must_be_strings():
    with pytest.raises(S.AnswersError, match="ChartQA target"):
        S.relaxed_accuracy("1", None)
    with pytest.raises(S.AnswersError, match="GQA answer"):
        S.gqa_match("red", ["red"])
    with pytest.raises(S.AnswersError, match="yes/no label"):
        S.pope_metrics(["yes"], ["maybe"])
