"""VQA answer normalisation: the tables and rules of the official VQA / TextVQA evaluation.

`vqa_normalize` is the answer processor LLaVA's TextVQA evaluator uses (``m4c_evaluator.py``,
``EvalAIAnswerProcessor``, itself taken from the EvalAI VQA server): it lower-cases, deletes every "," and
"?", splits "'s" off its word, applies the punctuation rule, turns number words into digits, drops articles
and restores apostrophe-less contractions. `normalize_answer` is vlmscale's lenient variant (no "'s" split,
"," and "?" go through the punctuation rule, every non-decimal period removed); the lenient scorers and the
training-time validation use it.
"""

from __future__ import annotations

import re

# Marks the punctuation rule handles; the period is separate (kept inside decimals) and the apostrophe and
# colon are left alone (contractions, clock times).
PUNCTUATION = (
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
)
ARTICLES = frozenset({"a", "an", "the"})
NUMBER_WORDS = {
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

# Apostrophe-less spelling -> contraction, as the official table has it. Two quirks are kept on purpose
# because the official scores depend on them: the capitalised keys ("Im", "Ive", ...) never match (words
# are lower-cased first), and "somebody'd" maps to "somebodyd" (the reverse of every other entry).
CONTRACTIONS = {
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
    "somebody'd": "somebodyd",
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

_DIGIT_COMMA_DIGIT = re.compile(r"(?<=\d),+(?=\d)")
_PERIOD_NOT_DECIMAL = re.compile(r"\.(?!\d)")
# The official processor passes re.UNICODE (= 32) where `re.sub` takes its count: it removes at most 32
# periods. Kept, so long answers score as officially.
OFFICIAL_MAX_PERIODS = int(re.UNICODE)


def strip_punctuation(text: str, max_periods: int = 0) -> str:
    """The VQA punctuation rule. A mark that touches a space anywhere in ``text`` (or any mark, when the
    text has a digit-comma-digit) is deleted everywhere; otherwise it becomes a space ("black-and-white" ->
    "black and white"). Then periods not followed by a digit are removed (at most ``max_periods``; 0 = all).
    """
    out = text
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    for mark in PUNCTUATION:
        touches_space = mark + " " in text or " " + mark in text
        out = out.replace(mark, "" if touches_space or delete_all else " ")
    return _PERIOD_NOT_DECIMAL.sub("", out, count=max_periods)


def words_to_canonical(text: str) -> str:
    """Lower-case words; number words -> digits, articles dropped, contractions restored."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES)


def vqa_normalize(text: str) -> str:
    """The official VQA / TextVQA answer processing (EvalAI, as in LLaVA's ``m4c_evaluator.py``).

    >>> vqa_normalize("What's that?")
    "what 's that"
    >>> vqa_normalize("red, white")
    'red white'
    """
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return words_to_canonical(strip_punctuation(text, max_periods=OFFICIAL_MAX_PERIODS))


def normalize_answer(text: str) -> str:
    """vlmscale's lenient VQA normalisation (used by the ``lenient`` scorings and validation): the official
    rules without the "'s" split, with "," and "?" left to the punctuation rule, every period removed.

    >>> normalize_answer("Two dogs.")
    '2 dogs'
    >>> normalize_answer("A dog")
    'dog'
    """
    text = str(text).replace("\n", " ").replace("\t", " ").strip()
    return words_to_canonical(strip_punctuation(text))
