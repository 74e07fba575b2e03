import copy

import pytest
import torch

from vlmscale.data import IGNORE_INDEX, IMAGE_TOKEN, encode_conversation, encode_prompt, image_token_id
from vlmscale.data.conversation import ConversationError, stop_token_ids

CONV = [
    {"from": "human", "value": "What color is the circle?\n<image>"},
    {"from": "gpt", "value": "red"},
    {"from": "human", "value": "How many circles are there?"},
    {"from": "gpt", "value": "two"},
]

# A ChatML-like template (its markers are plain text for the offline tokenizer, which is what matters here).
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def answer_spans(enc):
    """Token runs where labels are not masked."""
    labels = enc["labels"].tolist()
    spans, start = [], None
    for i, lab in enumerate([*labels, IGNORE_INDEX]):
        if lab != IGNORE_INDEX and start is None:
            start = i
        if lab == IGNORE_INDEX and start is not None:
            spans.append((start, i))
            start = None
    return spans


def test_plain_template_masks_everything_but_answers(tokenizer):
    enc = encode_conversation(tokenizer, CONV, has_image=True)
    ids, labels = enc["input_ids"], enc["labels"]
    assert ids.dtype == labels.dtype == torch.long and ids.shape == labels.shape
    unmasked = labels != IGNORE_INDEX
    assert torch.equal(labels[unmasked], ids[unmasked])
    spans = answer_spans(enc)
    texts = [tokenizer.decode(ids[a:b]) for a, b in spans]
    assert texts == [" red" + tokenizer.eos_token, " two" + tokenizer.eos_token]
    # exactly one image token, at the start of the first user turn, masked
    image_id = image_token_id(tokenizer)
    positions = (ids == image_id).nonzero().flatten().tolist()
    assert len(positions) == 1 and labels[positions[0]] == IGNORE_INDEX
    assert tokenizer.decode(ids).startswith(f"USER: {IMAGE_TOKEN}\nWhat color is the circle? ASSISTANT: red")
    assert enc["answer"] == "red"


def test_prompt_and_query(tokenizer):
    enc = encode_conversation(tokenizer, CONV, has_image=True)
    first_answer = answer_spans(enc)[0][0]
    assert torch.equal(enc["prompt_ids"], enc["input_ids"][:first_answer])
    assert tokenizer.decode(enc["prompt_ids"]).endswith("ASSISTANT:")
    assert tokenizer.decode(enc["query_ids"]) == "What color is the circle?"
    assert image_token_id(tokenizer) not in enc["query_ids"].tolist()
    # an eval runner builds the identical prompt from the question alone
    prompt = encode_prompt(tokenizer, "What color is the circle?", has_image=True)
    assert torch.equal(prompt["prompt_ids"], enc["prompt_ids"])
    assert torch.equal(prompt["query_ids"], enc["query_ids"])
    assert (prompt["labels"] == IGNORE_INDEX).all() and prompt["answer"] == ""


def test_text_only_and_system(tokenizer):
    conv = [{"from": "human", "value": "Say <image> hello."}, {"from": "gpt", "value": "hello"}]
    enc = encode_conversation(tokenizer, conv, has_image=False, system="Be brief.")
    assert image_token_id(tokenizer) not in enc["input_ids"].tolist()
    text = tokenizer.decode(enc["input_ids"])
    assert text == f"Be brief.\nUSER: Say  hello. ASSISTANT: hello{tokenizer.eos_token}"
    ((a, b),) = answer_spans(enc)
    assert tokenizer.decode(enc["input_ids"][a:b]) == " hello" + tokenizer.eos_token
    assert "Be brief" not in tokenizer.decode(enc["query_ids"])


def test_chat_template_masks_to_assistant_turns(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = CHATML
    enc = encode_conversation(tok, CONV, has_image=True)
    ids = enc["input_ids"]
    texts = [tok.decode(ids[a:b]) for a, b in answer_spans(enc)]
    assert texts == ["red<|im_end|>\n", "two<|im_end|>\n"]
    assert tok.decode(enc["prompt_ids"]).endswith("<|im_start|>assistant\n")
    assert tok.decode(ids).startswith(f"<|im_start|>user\n{IMAGE_TOKEN}\nWhat color")
    image_id = image_token_id(tok)
    assert ids.tolist().count(image_id) == 1 and enc["labels"][ids == image_id].item() == IGNORE_INDEX
    prompt = encode_prompt(tok, "What color is the circle?", has_image=True)
    assert torch.equal(prompt["prompt_ids"], enc["prompt_ids"])
    assert tok.decode(enc["query_ids"]) == "What color is the circle?"


def test_broken_chat_template_falls_back_to_plain(tokenizer, caplog):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = "{{ raise_exception('no system role') if messages[0]['role'] == 'system' else 'x' }}"
    enc = encode_conversation(tok, CONV, has_image=False, system="sys")
    assert tok.decode(enc["input_ids"]).startswith("sys\nUSER:")
    assert "plain" in caplog.text


def test_truncation(tokenizer):
    enc = encode_conversation(tokenizer, CONV, has_image=True, max_length=6)
    assert enc["truncated"] and len(enc["input_ids"]) == len(enc["labels"]) == 6
    assert not encode_conversation(tokenizer, CONV, has_image=True, max_length=500)["truncated"]


def test_bad_conversations(tokenizer):
    with pytest.raises(ConversationError, match="unknown speaker"):
        encode_conversation(tokenizer, [{"from": "robot", "value": "x"}], has_image=False)
    with pytest.raises(ConversationError, match="no user turn"):
        encode_conversation(tokenizer, [{"from": "gpt", "value": "x"}], has_image=False)
    with pytest.raises(ConversationError, match="not text"):
        encode_conversation(tokenizer, [{"from": "human", "value": 3}], has_image=False)


def test_stop_token_ids(tokenizer):
    assert stop_token_ids(tokenizer) == [tokenizer.eos_token_id]


# -------------------------------------------------------------- question first (QueCC query: prefix)


def answers(enc, tokenizer):
    return tokenizer.decode(enc["input_ids"][enc["labels"] != IGNORE_INDEX])


def check_question_first(tokenizer):
    image = image_token_id(tokenizer)
    first = encode_conversation(tokenizer, CONV, has_image=True, question_first=True)
    usual = encode_conversation(tokenizer, CONV, has_image=True)
    ids = first["input_ids"].tolist()
    at = ids.index(image)
    assert ids.count(image) == 1 and at > 0
    # Everything before the image is template + the first question, and it ends with the question's last token.
    before = tokenizer.decode(ids[:at])
    assert before.rstrip().endswith("What color is the circle?")
    assert "How many" not in before
    assert ids[at - 1] == first["query_ids"][-1]
    # The same answers are trained on, the same question feeds the query, the prompt is a prefix of the ids.
    assert answers(first, tokenizer) == answers(usual, tokenizer)
    assert torch.equal(first["query_ids"], usual["query_ids"])
    assert first["input_ids"][: len(first["prompt_ids"])].tolist() == first["prompt_ids"].tolist()
    # An eval prompt is the training record's prompt.
    prompt = encode_prompt(tokenizer, "What color is the circle?", has_image=True, question_first=True)
    assert torch.equal(prompt["prompt_ids"], first["prompt_ids"])
    # Text-only records have no image either way.
    text = encode_conversation(tokenizer, CONV, has_image=False, question_first=True)
    assert torch.equal(text["input_ids"], encode_conversation(tokenizer, CONV, has_image=False)["input_ids"])


def test_question_first_plain_template(tokenizer):
    check_question_first(tokenizer)


def test_question_first_chat_template(tokenizer):
    chat = copy.deepcopy(tokenizer)  # the fixture is shared: the template goes on a copy
    chat.chat_template = CHATML
    check_question_first(chat)
