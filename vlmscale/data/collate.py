"""Dataset items -> a batch (the batch contract in docs/ARCHITECTURE.md).

``input_ids``/``labels`` and ``query_ids`` are right-padded (labels with -100); ``prompt_ids`` are LEFT-padded so
that batched greedy generation appends new tokens at the same position for every row. Attention masks come
from the sequence lengths, never from comparing ids with the pad id (a pad id may equal eos).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vlmscale.contract import IGNORE_INDEX

# Items may carry a frozen tower's cached output in place of pixel_values (vlmscale.features)
FEATURE_KEYS = ("vision_patches", "vision_multilevel")


def pad_sequences(
    seqs: Sequence[torch.Tensor], value: int, left: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-d LongTensors into ``[B, max_len]`` padded with ``value``; returns ``(ids, attention_mask)``."""
    length = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), length), value, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        n = len(s)
        if n == 0:
            continue
        if left:
            ids[i, length - n :] = s
            mask[i, length - n :] = 1
        else:
            ids[i, :n] = s
            mask[i, :n] = 1
    return ids, mask


def collate(
    items: Sequence[dict], pad_token_id: int, image_size: int | tuple[int, int] | None = None
) -> dict:
    """Batch dataset items.

    ``pixel_values`` is ``[B, 3, H, W]`` with zeros for text-only items (``has_image`` False). When no item in
    the batch has an image, ``H, W`` come from ``image_size`` (``LlavaDataset.image_size``), or are 0 without it.
    Items with cached tower features give ``vision_patches`` (and ``vision_multilevel``) ``[B, P, C]`` instead
    of ``pixel_values``, zeros for text-only items.
    """
    if not items:
        raise ValueError("collate() got an empty batch")
    if any(FEATURE_KEYS[0] in it for it in items):
        return {**_stack_features(items), **_text(items, pad_token_id)}
    has_image = torch.tensor([it["pixel_values"] is not None for it in items], dtype=torch.bool)
    shapes = {tuple(it["pixel_values"].shape) for it in items if it["pixel_values"] is not None}
    if len(shapes) > 1:
        raise ValueError(f"images of different shapes in one batch: {sorted(shapes)}")
    if shapes:
        shape = shapes.pop()
    elif image_size is not None:
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        shape = (3, int(h), int(w))
    else:
        shape = (3, 0, 0)
    pixel_values = torch.zeros((len(items), *shape), dtype=torch.float32)
    for i, it in enumerate(items):
        if it["pixel_values"] is not None:
            pixel_values[i] = it["pixel_values"]
    return {"pixel_values": pixel_values, "has_image": has_image, **_text(items, pad_token_id)}


def _stack_features(items: Sequence[dict]) -> dict:
    """The cached features of the items' images, stacked; zeros for text-only items (``has_image`` False)."""
    has_image = torch.tensor([FEATURE_KEYS[0] in it for it in items], dtype=torch.bool)
    if not bool(has_image.all()) and any(it.get("pixel_values") is not None for it in items):
        raise ValueError("a batch mixes cached image features and pixel_values")
    out = {"has_image": has_image}
    first = next(it for it in items if FEATURE_KEYS[0] in it)
    for key in FEATURE_KEYS:
        if key in first:
            stacked = torch.zeros((len(items), *first[key].shape), dtype=first[key].dtype)
            for i, it in enumerate(items):
                if key in it:
                    stacked[i] = it[key]
            out[key] = stacked
    return out


def _text(items: Sequence[dict], pad_token_id: int) -> dict:
    """The token fields of a batch (padded) and the per-item strings."""
    input_ids, attention_mask = pad_sequences([it["input_ids"] for it in items], pad_token_id)
    labels, _ = pad_sequences([it["labels"] for it in items], IGNORE_INDEX)
    query_ids, query_attention_mask = pad_sequences([it["query_ids"] for it in items], pad_token_id)
    prompt_ids, prompt_attention_mask = pad_sequences(
        [it["prompt_ids"] for it in items], pad_token_id, left=True
    )
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "query_ids": query_ids,
        "query_attention_mask": query_attention_mask,
        "prompt_ids": prompt_ids,
        "prompt_attention_mask": prompt_attention_mask,
        "answers": [it["answer"] for it in items],
        "categories": [it["category"] for it in items],
        "ids": [it["id"] for it in items],
    }
