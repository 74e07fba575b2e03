"""Test oracles: the official scoring rules transcribed step by step from the public scripts, written apart
from `vlmscale.eval.scorers` (own tables, own control flow) so the differential tests compare two
independent readings of each script. Quirks of the originals are reproduced on purpose (marked QUIRK).

Sources (read through the public code; rules re-written here):
- m4c_evaluator.py (LLaVA; EvalAIAnswerProcessor + TextVQAAccuracyEvaluator)   -> textvqa_score
- eval_pope.py (LLaVA)                                                         -> pope_answer, pope_counts
- convert_gqa_for_eval.py (LLaVA) + GQA eval.py                                -> gqa_correct
- RRC DocVQA evaluation / lmms-eval anls                                       -> docvqa_anls
- eval_science_qa.py (LLaVA 1.5)                                               -> scienceqa_choice
- pix2struct / lmms-eval relaxed_correctness                                   -> chartqa_correct
- MME eval_tool/calculation.py                                                 -> mme_label, mme_subtask_score
- VLMEvalKit can_infer (exact_matching) + MMBench circular grouping            -> mmbench_choice, mmbench_circular
- MultimodalOCR OCRBench evaluation                                            -> ocrbench_correct
"""

from __future__ import annotations

import re

# ------------------------------------------------------------------------------------------------ TextVQA

_PUNCT_MARKS = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`"]
_PUNCT_MARKS += [",", "?", "!"]
_NUMBERS = dict(
    zip(
        "none zero one two three four five six seven eight nine ten".split(),
        "0 0 1 2 3 4 5 6 7 8 9 10".split(),
    )
)
# "key>value" pairs, transcribed from the EvalAI contraction table (QUIRK: "somebody'd>somebodyd" and the
# capitalised keys that can never match lower-cased words).
_CONTRACTION_PAIRS = """
aint>ain't arent>aren't cant>can't couldve>could've couldnt>couldn't couldn'tve>couldn't've
couldnt've>couldn't've didnt>didn't doesnt>doesn't dont>don't hadnt>hadn't hadnt've>hadn't've
hadn'tve>hadn't've hasnt>hasn't havent>haven't hed>he'd hed've>he'd've he'dve>he'd've hes>he's howd>how'd
howll>how'll hows>how's Id've>I'd've I'dve>I'd've Im>I'm Ive>I've isnt>isn't itd>it'd itd've>it'd've
it'dve>it'd've itll>it'll let's>let's maam>ma'am mightnt>mightn't mightnt've>mightn't've
mightn'tve>mightn't've mightve>might've mustnt>mustn't mustve>must've neednt>needn't notve>not've
oclock>o'clock oughtnt>oughtn't ow's'at>'ow's'at 'ows'at>'ow's'at 'ow'sat>'ow's'at shant>shan't
shed've>she'd've she'dve>she'd've she's>she's shouldve>should've shouldnt>shouldn't
shouldnt've>shouldn't've shouldn'tve>shouldn't've somebody'd>somebodyd somebodyd've>somebody'd've
somebody'dve>somebody'd've somebodyll>somebody'll somebodys>somebody's someoned>someone'd
someoned've>someone'd've someone'dve>someone'd've someonell>someone'll someones>someone's
somethingd>something'd somethingd've>something'd've something'dve>something'd've somethingll>something'll
thats>that's thered>there'd thered've>there'd've there'dve>there'd've therere>there're theres>there's
theyd>they'd theyd've>they'd've they'dve>they'd've theyll>they'll theyre>they're theyve>they've
twas>'twas wasnt>wasn't wed've>we'd've we'dve>we'd've weve>we've werent>weren't whatll>what'll
whatre>what're whats>what's whatve>what've whens>when's whered>where'd wheres>where's whereve>where've
whod>who'd whod've>who'd've who'dve>who'd've wholl>who'll whos>who's whove>who've whyll>why'll
whyre>why're whys>why's wont>won't wouldve>would've wouldnt>wouldn't wouldnt've>wouldn't've
wouldn'tve>wouldn't've yall>y'all yall'll>y'all'll y'allll>y'all'll yall'd've>y'all'd've
y'alld've>y'all'd've y'all'dve>y'all'd've youd>you'd youd've>you'd've you'dve>you'd've youll>you'll
youre>you're youve>you've
"""
_CONTRACTION_TABLE = dict(pair.split(">") for pair in _CONTRACTION_PAIRS.split())
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # QUIRK: a look-ahead spelled like a look-behind
_COMMA_IN_NUMBER = re.compile(r"(?<=\d)(\,)+(?=\d)")


def evalai_process(answer: str) -> str:
    # word_tokenize
    step = answer.lower()
    step = step.replace(",", "")
    step = step.replace("?", "")
    step = step.replace("'s", " 's")
    step = step.strip()
    step = step.replace("\n", " ")
    step = step.replace("\t", " ")
    step = step.strip()
    # process_punctuation: the tests look at the text as it came in, the replacements accumulate
    original = step
    for mark in _PUNCT_MARKS:
        spaced = (mark + " ") in original or (" " + mark) in original
        if spaced or _COMMA_IN_NUMBER.search(original) is not None:
            step = step.replace(mark, "")
        else:
            step = step.replace(mark, " ")
    step = _PERIOD.sub("", step, 32)  # QUIRK: re.UNICODE (32) lands in re.sub's count argument
    # process_digit_article
    kept = []
    for word in step.lower().split():
        word = _NUMBERS[word] if word in _NUMBERS else word
        if word in ("a", "an", "the"):
            continue
        kept.append(word)
    for index in range(len(kept)):
        if kept[index] in _CONTRACTION_TABLE:
            kept[index] = _CONTRACTION_TABLE[kept[index]]
    return " ".join(kept)


def textvqa_score(prediction: str, raw_answers: list[str]) -> float:
    processed = [evalai_process(a) for a in raw_answers]
    numbered = list(enumerate(processed))
    table = {}
    for candidate in set(processed):
        per_annotator = []
        for held_out in numbered:
            rest = [item for item in numbered if item != held_out]
            agreeing = [item for item in rest if item[1] == candidate]
            per_annotator.append(min(1, float(len(agreeing)) / 3))
        table[candidate] = sum(per_annotator) / len(per_annotator)
    return table.get(evalai_process(prediction), 0.0)


# ------------------------------------------------------------------------------------------------ POPE


def pope_answer(text: str) -> str:
    if text.find(".") != -1:
        text = text.split(".")[0]
    text = text.replace(",", "")
    words = text.split(" ")
    if "No" in words or "not" in words or "no" in words:
        return "no"
    return "yes"


def pope_counts(texts: list[str], labels: list[str]) -> dict[str, float]:
    preds = [0 if pope_answer(t) == "no" else 1 for t in texts]
    golds = [0 if label == "no" else 1 for label in labels]
    tp = sum(1 for p, g in zip(preds, golds) if p == 1 and g == 1)
    fp = sum(1 for p, g in zip(preds, golds) if p == 1 and g == 0)
    tn = sum(1 for p, g in zip(preds, golds) if p == 0 and g == 0)
    fn = sum(1 for p, g in zip(preds, golds) if p == 0 and g == 1)
    out = {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "yes_ratio": preds.count(1) / len(preds)}
    out["accuracy"] = (tp + tn) / (tp + tn + fp + fn)
    out["precision"] = float(tp) / float(tp + fp) if tp + fp else 0.0  # (the script divides by zero)
    out["recall"] = float(tp) / float(tp + fn) if tp + fn else 0.0
    p, r = out["precision"], out["recall"]
    out["f1"] = 2 * p * r / (p + r) if p + r else 0.0
    return out


# ------------------------------------------------------------------------------------------------ GQA


def gqa_correct(text: str, gold: str) -> bool:
    converted = text.rstrip(".").lower()  # LLaVA's conversion to the GQA prediction file
    return converted == gold  # GQA eval.py: plain equality


# ------------------------------------------------------------------------------------------------ DocVQA


def _edit_distance(first: str, second: str) -> int:
    if len(first) > len(second):
        first, second = second, first
    row = list(range(len(first) + 1))
    for j, char_b in enumerate(second):
        new_row = [j + 1]
        for i, char_a in enumerate(first):
            if char_a == char_b:
                new_row.append(row[i])
            else:
                new_row.append(1 + min(row[i], row[i + 1], new_row[-1]))
        row = new_row
    return row[-1]


def docvqa_anls(prediction: str, answers: list[str], threshold: float = 0.5) -> float:
    values = []
    for answer in answers:
        gt = " ".join(answer.strip().lower().split())
        det = " ".join(prediction.strip().lower().split())
        longest = max(len(answer.upper()), len(prediction.upper()))
        values.append(0.0 if longest == 0 else float(_edit_distance(gt, det)) / float(longest))
    result = 1 - min(values)
    if result < threshold:
        result = 0
    return result


# ------------------------------------------------------------------------------------------------ ScienceQA

_SQA_OPTIONS = ["A", "B", "C", "D", "E"]


def scienceqa_choice(text: str, n_choices: int) -> int:
    """The predicted choice index, -1 when the answer fails to parse (LLaVA 1.5's script)."""
    if text in _SQA_OPTIONS:
        answer = text
    elif len(text) >= 3 and text[0] in _SQA_OPTIONS and text[1:3] == ". ":
        answer = text[0]
    else:
        found = re.compile(r"The answer is ([A-Z]).").findall(text)
        answer = found[0] if len(found) == 1 else "FAILED"
    if answer in _SQA_OPTIONS[:n_choices]:
        return _SQA_OPTIONS.index(answer)
    return -1


# ------------------------------------------------------------------------------------------------ ChartQA


def chartqa_correct(prediction: str, target: str, max_relative_change: float = 0.05) -> bool:
    def to_float(text):
        try:
            if text.endswith("%"):
                return float(text.rstrip("%")) / 100.0
            return float(text)
        except ValueError:
            return None

    p, t = to_float(prediction), to_float(target)
    if p is not None and t:
        return abs(p - t) / abs(t) <= max_relative_change
    return prediction.lower() == target.lower()


# ------------------------------------------------------------------------------------------------ MME


def mme_label(prediction: str) -> str:
    answer = prediction.lower()  # process_result lower-cases before parse_pred_ans
    if answer in ["yes", "no"]:
        return answer
    prefix = answer[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def mme_subtask_score(pairs: list[tuple[tuple[str, str], tuple[str, str]]]) -> float:
    """calculation.py for one subtask: ``pairs`` holds, per image, its two (prediction, label) questions;
    score = 100 * accuracy + 100 * accuracy+."""
    right_questions = right_images = 0
    for pair in pairs:
        right_here = 0
        for prediction, label in pair:
            if mme_label(prediction) == label.lower():
                right_here += 1
        right_questions += right_here
        right_images += right_here == 2
    return 100 * right_questions / (2 * len(pairs)) + 100 * right_images / len(pairs)


# ------------------------------------------------------------------------------------------------ MMBench

_REFUSALS = [
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
]


def _infer_option(answer: str, choices: dict[str, str]):
    if "Failed to obtain answer via API" in answer:
        return False
    for refusal in _REFUSALS:
        if refusal in answer:
            return "Z"
    modified = answer
    for char in ".()[],:;!*#{}":
        modified = modified.replace(char, " ")
    splits = [x.strip() for x in modified.split()]
    count = sum(1 for c in choices if c in splits)
    if count == 1:
        for c in choices:
            if c in splits:
                return c
    elif count == 0 and sum(1 for c in ("Z", "") if c in splits) == 1:
        return "Z"
    return False


def _infer_text(answer: str, choices: dict[str, str]):
    answer = answer.lower()
    if len(answer) > 2 * sum(len(str(v)) for v in choices.values()):
        return False
    lowered = {k: str(v).lower() for k, v in choices.items()}
    candidates = [k for k in lowered if lowered[k] in answer]
    return candidates[0] if len(candidates) == 1 else False


def mmbench_choice(answer: str, options: list[str]):
    """VLMEvalKit's can_infer: a letter, "Z" (refusal) or False (to the LLM judge, wrong here)."""
    choices = {chr(ord("A") + i): option for i, option in enumerate(options)}
    found = _infer_option(answer, choices)
    return found if found else _infer_text(answer, choices)


def mmbench_circular(results: dict[int, bool]) -> float:
    """Circular accuracy from {row index: pass right}: passes of a question share index % 1e6."""
    groups: dict[int, list[bool]] = {}
    for index, right in results.items():
        groups.setdefault(index % 1_000_000, []).append(right)
    return sum(all(v) for v in groups.values()) / len(groups)


# ------------------------------------------------------------------------------------------------ OCRBench


def ocrbench_correct(predict: str, answers, dataset_name: str) -> int:
    result = 0
    if dataset_name == "HME100k":
        if isinstance(answers, list):
            for answer in answers:
                answer = answer.strip().replace("\n", " ").replace(" ", "")
                predict = predict.strip().replace("\n", " ").replace(" ", "")
                if answer in predict:
                    result = 1
        else:
            answers = answers.strip().replace("\n", " ").replace(" ", "")
            predict = predict.strip().replace("\n", " ").replace(" ", "")
            if answers in predict:
                result = 1
    else:
        if isinstance(answers, list):
            for answer in answers:
                answer = answer.lower().strip().replace("\n", " ")
                predict = predict.lower().strip().replace("\n", " ")
                if answer in predict:
                    result = 1
        else:
            answers = answers.lower().strip().replace("\n", " ")
            predict = predict.lower().strip().replace("\n", " ")
            if answers in predict:
                result = 1
    return result
