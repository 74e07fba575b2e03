"""The question-first layout (QueCC ``query: prefix``): the image right after the first question."""

import copy

import torch

from vlmscale.data import IGNORE_INDEX, LlavaDataset, encode_conversation, encode_prompt, image_token_id

CONV = [
    {"from": "human", "value": "<image>\nWhat color is the circle?"},
    {"from": "gpt", "value": "red"},
    {"from": "human", "value": "How many circles are there?"},
    {"from": "gpt", "value": "two"},
]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


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


def test_dataset_passes_the_layout_on(tokenizer, processor, llava_dir):
    data_path, images = llava_dir / "data.json", llava_dir / "images"
    usual = LlavaDataset(data_path, images, tokenizer, processor)
    first = LlavaDataset(data_path, images, tokenizer, processor, question_first=True)
    image = image_token_id(tokenizer)
    for i in range(len(usual)):
        a, b = usual[i], first[i]
        assert torch.equal(a["labels"][a["labels"] != IGNORE_INDEX], b["labels"][b["labels"] != IGNORE_INDEX])
        assert torch.equal(first.encode_text(i)["input_ids"], b["input_ids"])
        if a["pixel_values"] is not None:
            assert a["input_ids"].tolist().index(image) < b["input_ids"].tolist().index(image)
