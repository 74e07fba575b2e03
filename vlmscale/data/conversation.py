"""LLaVA conversations -> token ids with labels on the assistant answers only.

A conversation is rendered as a list of text segments, each either *context* (system, user turns, template
markup, the ``<image>`` token: label -100) or *answer* (an assistant turn and its end-of-turn/eos: trained on).
Segments are tokenised separately and concatenated, so label boundaries are exact whatever the tokenizer.

Two templates:

* the tokenizer's chat template, when it has one (``apply_chat_template``); answer spans are found by rendering
  growing prefixes of the conversation (with and without the generation prompt) and checking that each is a
  prefix of the full rendering, otherwise the plain template is used (with a warning);
* the plain template (LLaVA v1 style) otherwise::

      [bos][system "\\n"]USER: <image>\\n{question} ASSISTANT: {answer}</s>\\nUSER: {question} ASSISTANT: ...

With an image, every ``<image>`` placeholder is removed from the text and exactly one is put at the start of
the first user turn, as LLaVA does; text-only records lose any stray placeholder. ``question_first=True`` (for
QueCC's ``query: prefix``) puts it right after the first question instead (``USER: {question}<image>``), so
the tokens before the image are template + question and the last of them is the question's last token.

:func:`encode_conversation` serves training data; :func:`encode_prompt` builds the same prompt from a bare
``(question, has_image)`` for an eval runner, identical to a training record's ``prompt_ids``; generated ids
come back to text through :func:`decode`, cut at :func:`stop_token_ids` (validation and eval alike).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from vlmscale.contract import IGNORE_INDEX, IMAGE_TOKEN
from vlmscale.errors import UserError

log = logging.getLogger(__name__)

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
PLAIN_USER = "USER: "
PLAIN_ASSISTANT = " ASSISTANT:"

# End-of-turn tokens of common chat templates; used as extra stop ids for generation when present.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


class ConversationError(UserError):
    """A conversation that cannot be rendered (unknown role, non-text value, no user turn...)."""


def to_messages(
    conversations: Sequence[dict], has_image: bool, system: str | None = None, question_first: bool = False
) -> list[dict[str, str]]:
    """LLaVA turns (``from``/``value``) or chat messages (``role``/``content``) -> chat messages.

    Places exactly one ``IMAGE_TOKEN`` at the start of the first user turn when ``has_image`` (at its end with
    ``question_first``), none otherwise.
    """
    messages: list[dict[str, str]] = []
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict):
            raise ConversationError(f"turn {i} is a {type(turn).__name__}, not a dict")
        role = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if role not in ROLES:
            raise ConversationError(
                f"turn {i} has unknown speaker {role!r} (expected one of {sorted(ROLES)})"
            )
        if not isinstance(text, str):
            raise ConversationError(f"turn {i} has a {type(text).__name__} value, not text")
        messages.append({"role": ROLES[role], "content": text.replace(IMAGE_TOKEN, "").strip()})
    if system is not None and not (messages and messages[0]["role"] == "system"):
        messages.insert(0, {"role": "system", "content": system})
    users = [m for m in messages if m["role"] == "user"]
    if not users:
        raise ConversationError("the conversation has no user turn")
    if any(m["role"] == "system" for m in messages[1:]):
        raise ConversationError("a system turn may only come first")
    if has_image:
        first = users[0]
        if question_first:
            first["content"] = f"{first['content']}{IMAGE_TOKEN}"
        else:
            first["content"] = f"{IMAGE_TOKEN}\n{first['content']}" if first["content"] else IMAGE_TOKEN
    return messages


# ------------------------------------------------------------------------------------------------- templates


def _plain_segments(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> list[tuple[str, bool]]:
    segments: list[tuple[str, bool]] = []
    if tokenizer.bos_token is not None:
        segments.append((tokenizer.bos_token, False))
    turn = 0
    for m in messages:
        if m["role"] == "system":
            segments.append((m["content"] + "\n", False))
        elif m["role"] == "user":
            sep = "\n" if turn else ""
            segments.append((f"{sep}{PLAIN_USER}{m['content']}{PLAIN_ASSISTANT}", False))
            turn += 1
        else:
            segments.append((f" {m['content']}{tokenizer.eos_token}", True))
    return segments


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict], generation_prompt: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    if not isinstance(text, str):  # pragma: no cover - defensive across transformers versions
        raise TypeError(f"apply_chat_template returned {type(text).__name__}")
    return text


def _chat_segments(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> list[tuple[str, bool]]:
    ends_with_user = messages[-1]["role"] == "user"
    full = _render(tokenizer, messages, generation_prompt=ends_with_user)
    segments: list[tuple[str, bool]] = []
    pos = 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = _render(tokenizer, messages[:i], generation_prompt=True)
        upto = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not (upto.startswith(start) and full.startswith(upto) and len(start) >= pos):
            raise ConversationError("the chat template does not render growing prefixes consistently")
        segments.append((full[pos : len(start)], False))
        segments.append((full[len(start) : len(upto)], True))
        pos = len(upto)
    segments.append((full[pos:], False))
    return [(text, trainable) for text, trainable in segments if text]


def segments(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> list[tuple[str, bool]]:
    """``[(text, is_answer), ...]`` covering the whole rendered conversation."""
    if getattr(tokenizer, "chat_template", None):
        try:
            return _chat_segments(tokenizer, messages)
        except Exception as err:  # a template that rejects the conversation: fall back, loudly
            log.warning("chat template failed (%s); using the plain USER:/ASSISTANT: template", err)
    return _plain_segments(tokenizer, messages)


# -------------------------------------------------------------------------------------------------- encoding


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _query_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> list[int]:
    """The first question as QueCC's query pass reads it: tokenised on its own the way the LLM expects, with the
    special tokens its tokenizer adds (a Llama/Vicuna BOS; Qwen adds none), as the reference implementation."""
    question = next(m["content"] for m in messages if m["role"] == "user")
    question = question.replace(IMAGE_TOKEN, "").strip()
    ids = list(tokenizer(question)["input_ids"]) if question else []
    return ids or [tokenizer.eos_token_id]  # never empty: the query pass needs at least one token


def encode_messages(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict], max_length: int | None = None
) -> dict:
    """Token ids of rendered chat ``messages``; see :func:`encode_conversation` for the returned keys."""
    input_ids: list[int] = []
    labels: list[int] = []
    prompt_len = None
    for text, trainable in segments(tokenizer, messages):
        if trainable and prompt_len is None:
            prompt_len = len(input_ids)
        ids = _ids(tokenizer, text)
        input_ids += ids
        labels += ids if trainable else [IGNORE_INDEX] * len(ids)
    if (
        prompt_len is None
    ):  # no assistant turn: the whole text is the prompt (it ends in the generation prompt)
        prompt_len = len(input_ids)
    prompt_ids = input_ids[:prompt_len]
    query_ids = _query_ids(tokenizer, messages)
    answer = next((m["content"] for m in messages if m["role"] == "assistant"), "")
    truncated = max_length is not None and len(input_ids) > max_length
    if max_length is not None:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
        prompt_ids, query_ids = prompt_ids[:max_length], query_ids[:max_length]
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        "prompt_ids": torch.tensor(prompt_ids, dtype=torch.long),
        "query_ids": torch.tensor(query_ids, dtype=torch.long),
        "answer": answer.strip(),
        "truncated": truncated,
    }


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[dict],
    has_image: bool,
    system: str | None = None,
    max_length: int | None = None,
    question_first: bool = False,
) -> dict:
    """Encode one LLaVA conversation (``question_first``: the image after the first question, see above).

    Returns ``input_ids`` and ``labels`` (LongTensor[L], -100 except assistant answers and their end-of-turn),
    ``prompt_ids`` (everything before the first answer, ending in the generation prompt), ``query_ids`` (the
    first user question's text alone: no ``<image>``, no template; never empty), ``answer`` (the first
    assistant answer, stripped; ``""`` without one) and ``truncated`` (whether ``max_length`` cut the ids).
    """
    messages = to_messages(conversations, has_image, system, question_first)
    return encode_messages(tokenizer, messages, max_length)


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    has_image: bool,
    system: str | None = None,
    question_first: bool = False,
) -> dict:
    """The generation prompt for one question (eval): same keys as :func:`encode_conversation`.

    ``prompt_ids`` equals the ``prompt_ids`` of a training record whose first question is ``question``.
    """
    turns = [{"from": "human", "value": question}]
    return encode_conversation(tokenizer, turns, has_image, system, question_first=question_first)


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids that end an answer: eos plus the end-of-turn tokens of the chat template, where the vocab has them."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if getattr(tokenizer, "chat_template", None):
        vocab = tokenizer.get_vocab()
        ids += [vocab[t] for t in _END_OF_TURN if t in vocab]
    return sorted(set(ids))


def decode(tokens: torch.Tensor, tokenizer: PreTrainedTokenizerBase, stop_ids: Sequence[int]) -> list[str]:
    """Generated ids [B, n] -> answer strings, each cut before its first stop token (eos / end-of-turn)."""
    stop = set(int(i) for i in stop_ids)
    out = []
    for row in tokens.tolist():
        cut = next((i for i, t in enumerate(row) if t in stop), len(row))
        out.append(tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
    return out
