import torch

from vlmscale.data import IGNORE_INDEX, collate

PAD = 0


def item(n_ids, n_prompt, n_query, image=True, answer="a"):
    ids = torch.arange(1, n_ids + 1)
    labels = torch.full((n_ids,), IGNORE_INDEX)
    labels[-1] = ids[-1]
    return {
        "pixel_values": torch.ones(3, 8, 8) if image else None,
        "input_ids": ids,
        "labels": labels,
        "query_ids": torch.arange(10, 10 + n_query),
        "prompt_ids": torch.arange(20, 20 + n_prompt),
        "answer": answer,
        "category": "reasoning",
        "id": f"x{n_ids}",
    }


def test_collate_padding_sides():
    batch = collate([item(5, 3, 2), item(3, 4, 4, image=False, answer="b")], pad_token_id=PAD)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [1, 2, 3, PAD, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["labels"][1].tolist() == [IGNORE_INDEX, IGNORE_INDEX, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert batch["query_ids"].tolist() == [[10, 11, PAD, PAD], [10, 11, 12, 13]]
    assert batch["query_attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    # prompts are LEFT-padded: the last position is every row's last prompt token
    assert batch["prompt_ids"].tolist() == [[PAD, 20, 21, 22], [20, 21, 22, 23]]
    assert batch["prompt_attention_mask"].tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]]
    assert batch["has_image"].tolist() == [True, False]
    assert batch["pixel_values"].shape == (2, 3, 8, 8)
    assert batch["pixel_values"][0].eq(1).all() and batch["pixel_values"][1].eq(0).all()
    assert batch["answers"] == ["a", "b"] and batch["categories"] == ["reasoning"] * 2
    assert batch["ids"] == ["x5", "x3"]
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long


def test_collate_text_only_batch_uses_image_size():
    items = [item(2, 1, 1, image=False)]
    assert collate(items, PAD, image_size=16)["pixel_values"].shape == (1, 3, 16, 16)
    assert collate(items, PAD, image_size=(8, 12))["pixel_values"].shape == (1, 3, 8, 12)
    assert not collate(items, PAD)["has_image"].any()


def test_pad_id_equal_to_real_token_keeps_masks_from_lengths():
    batch = collate([item(2, 2, 2), item(1, 1, 1)], pad_token_id=1)  # id 1 also appears as a real token
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert batch["prompt_attention_mask"].tolist() == [[1, 1], [0, 1]]
