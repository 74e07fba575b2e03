import json
import logging

import pytest
import torch
from PIL import Image

from vlmscale.data import (
    IGNORE_INDEX,
    LlavaDataset,
    LlavaFormatError,
    MissingImageError,
    UnreadableImageError,
    build_datasets,
    collate,
    image_token_id,
)

GOOD = {"id": "ok", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}


@pytest.mark.parametrize("name", ["data.json", "data.jsonl"])
def test_fixture_loads(llava_dir, tokenizer, processor, name):
    ds = LlavaDataset(llava_dir / name, llava_dir / "images", tokenizer, processor)
    assert len(ds) == 3 and ds.image_size == (64, 64)
    items = [ds[i] for i in range(3)]
    image_id = image_token_id(tokenizer)
    for it, has_image in zip(items, [True, True, False]):
        assert set(it) == {
            "pixel_values",
            "input_ids",
            "labels",
            "query_ids",
            "prompt_ids",
            "answer",
            "category",
            "id",
        }
        assert it["input_ids"].tolist().count(image_id) == (1 if has_image else 0)
        assert (it["labels"] != IGNORE_INDEX).any()
        if has_image:
            assert it["pixel_values"].shape == (3, 64, 64) and it["pixel_values"].dtype == torch.float32
        else:
            assert it["pixel_values"] is None
    assert [it["id"] for it in items] == ["r0", "r1", "r2"]
    assert [it["answer"] for it in items] == ["red", "yes", "hello"]
    assert [it["category"] for it in items] == ["", "reasoning", ""]
    assert tokenizer.decode(items[0]["query_ids"]) == "What color is the picture?"
    batch = collate(items, tokenizer.pad_token_id, image_size=ds.image_size)
    assert batch["has_image"].tolist() == [True, True, False]


def test_pad_aspect_uses_processor_mean(llava_dir, tokenizer, processor):
    ds = LlavaDataset(llava_dir / "data.json", llava_dir / "images", tokenizer, processor)
    px = ds[1]["pixel_values"]  # the 32x64 blue image, padded left and right to 64x64
    assert px[:, :, :10].abs().max() < 0.02  # the mean colour normalises to ~0
    mean, std = torch.tensor(processor.image_mean), torch.tensor(processor.image_std)
    blue = (torch.tensor([0.0, 0.0, 1.0]) - mean) / std
    assert torch.allclose(px[:, 32, 32], blue, atol=0.05)
    crop = LlavaDataset(
        llava_dir / "data.json", llava_dir / "images", tokenizer, processor, image_aspect_ratio="crop"
    )
    assert torch.allclose(crop[1]["pixel_values"][:, 32, 2], blue, atol=0.05)  # no padding: blue to the edge


def test_corrupt_jsonl_line_names_file_and_record(tmp_path, tokenizer, processor):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(LlavaFormatError, match=r"bad\.jsonl: record 1 \(line 2\)"):
        LlavaDataset(path, tmp_path, tokenizer, processor)


def test_corrupt_json_names_file(tmp_path, tokenizer, processor):
    path = tmp_path / "bad.json"
    path.write_text('[{"id": 1,\n')
    with pytest.raises(LlavaFormatError, match=r"bad\.json: not valid JSON at line"):
        LlavaDataset(path, tmp_path, tokenizer, processor)


@pytest.mark.parametrize(
    "record, message",
    [
        ({"id": "x"}, "missing or empty 'conversations'"),
        ({"conversations": [{"from": "human"}]}, "not text"),
        ({"conversations": [{"value": "hi"}]}, "unknown speaker"),
        ({"image": ["a.png", "b.png"], "conversations": GOOD["conversations"]}, "path string"),
        ("just a string", "expected an object"),
    ],
)
def test_malformed_record_names_file_and_index(
    tmp_path, tokenizer, processor, write_records, record, message
):
    path = write_records(tmp_path / "d.json", [GOOD, GOOD, record])
    with pytest.raises(LlavaFormatError, match=rf"d\.json: record 2: .*{message}"):
        LlavaDataset(path, tmp_path, tokenizer, processor)


def _with_missing(llava_dir, write_records):
    records = json.loads((llava_dir / "data.json").read_text())
    records.insert(1, {"id": "gone", "image": "missing/nope.png", "conversations": GOOD["conversations"]})
    return write_records(llava_dir / "missing.json", records)


def test_missing_image_error_names_path(llava_dir, tokenizer, processor, write_records):
    path = _with_missing(llava_dir, write_records)
    with pytest.raises(MissingImageError, match=r"record 1: image not found: .*missing/nope\.png"):
        LlavaDataset(path, llava_dir / "images", tokenizer, processor)


def test_missing_image_skip_counts_and_logs(llava_dir, tokenizer, processor, write_records, caplog):
    path = _with_missing(llava_dir, write_records)
    with caplog.at_level(logging.WARNING):
        ds = LlavaDataset(path, llava_dir / "images", tokenizer, processor, on_missing_image="skip")
    assert len(ds) == 3 and ds.num_skipped == 1
    assert ds.skipped[0][0] == 1 and ds.skipped[0][1].endswith("missing/nope.png")
    assert "skipped 1 of 4" in caplog.text
    assert [ds[i]["id"] for i in range(3)] == ["r0", "r1", "r2"]


def test_images_load_lazily(llava_dir, tokenizer, processor):
    ds = LlavaDataset(llava_dir / "data.json", llava_dir / "images", tokenizer, processor)
    (llava_dir / "images" / "red.png").unlink()  # removed after the load-time check: found on access
    with pytest.raises(MissingImageError, match="red.png"):
        ds[0]
    assert ds[2]["pixel_values"] is None


def _with_corrupt(llava_dir, write_records, image_bytes):
    """data.json with a record 1 whose image file holds `image_bytes`."""
    (llava_dir / "images" / "corrupt.png").write_bytes(image_bytes)
    records = json.loads((llava_dir / "data.json").read_text())
    records.insert(1, {"id": "bad", "image": "corrupt.png", "conversations": GOOD["conversations"]})
    return write_records(llava_dir / "corrupt.json", records)


RANDOM_BYTES = bytes(range(256)) * 4


def test_corrupt_image_error_names_file_record_and_image(llava_dir, tokenizer, processor, write_records):
    path = _with_corrupt(llava_dir, write_records, RANDOM_BYTES)
    with pytest.raises(
        UnreadableImageError, match=r"corrupt\.json: record 1: image unreadable .*corrupt\.png"
    ):
        LlavaDataset(path, llava_dir / "images", tokenizer, processor)


def test_corrupt_image_skip_counts_and_logs_record(llava_dir, tokenizer, processor, write_records, caplog):
    path = _with_corrupt(llava_dir, write_records, RANDOM_BYTES)
    with caplog.at_level(logging.WARNING):
        ds = LlavaDataset(path, llava_dir / "images", tokenizer, processor, on_missing_image="skip")
    assert len(ds) == 3 and ds.skipped == [(1, str(llava_dir / "images" / "corrupt.png"))]
    assert "record 1 skipped" in caplog.text and "unreadable" in caplog.text
    assert [ds[i]["id"] for i in range(3)] == ["r0", "r1", "r2"]


def _truncated_png(llava_dir):
    """A PNG whose header reads fine but whose pixel data is cut off: fails only when decoded."""
    full = llava_dir / "images" / "full.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(full)
    return full.read_bytes()[:200]


def test_image_failing_at_decode_names_record(llava_dir, tokenizer, processor, write_records):
    path = _with_corrupt(llava_dir, write_records, _truncated_png(llava_dir))
    ds = LlavaDataset(path, llava_dir / "images", tokenizer, processor)
    assert len(ds) == 4  # the header check passed it
    with pytest.raises(UnreadableImageError, match=r"corrupt\.json: record 1: image unreadable"):
        ds[1]


def test_image_failing_at_decode_is_skipped_like_a_missing_one(
    llava_dir, tokenizer, processor, write_records, caplog
):
    path = _with_corrupt(llava_dir, write_records, _truncated_png(llava_dir))
    ds = LlavaDataset(path, llava_dir / "images", tokenizer, processor, on_missing_image="skip")
    with caplog.at_level(logging.WARNING):
        item = ds[1]
    assert item["id"] == "r1"  # the next readable record stands in
    assert ds.skipped == [(1, str(llava_dir / "images" / "corrupt.png"))]
    assert "record 1 skipped" in caplog.text


def test_all_images_unreadable_is_an_error(tmp_path, tokenizer, processor, write_records):
    (tmp_path / "a.png").write_bytes(b"")
    record = {"id": "a", "image": "a.png", "conversations": GOOD["conversations"]}
    path = write_records(tmp_path / "d.json", [record])
    ds = LlavaDataset(path, tmp_path, tokenizer, processor, on_missing_image="skip", check_images=False)
    with pytest.raises(UnreadableImageError, match=r"d\.json: no record has a readable image"):
        ds[0]


def test_non_utf8_file_names_path(tmp_path, tokenizer, processor):
    path = tmp_path / "latin1.json"
    path.write_bytes(
        json.dumps([GOOD]).replace("yo", "caf\u00e9").encode("utf-8").replace(b"\xc3\xa9", b"\xe9")
    )
    with pytest.raises(LlavaFormatError, match=r"latin1\.json: not UTF-8 text \(byte \d+, line 1"):
        LlavaDataset(path, tmp_path, tokenizer, processor)


def test_truncation_counted(llava_dir, tokenizer, processor, caplog):
    ds = LlavaDataset(llava_dir / "data.json", llava_dir / "images", tokenizer, processor, max_length=8)
    with caplog.at_level(logging.WARNING):
        items = [ds[i] for i in range(3)]
    assert all(len(it["input_ids"]) <= 8 for it in items)
    assert ds.num_truncated >= 2 and "truncated to max_length=8" in caplog.text


def test_bad_options(llava_dir, tokenizer, processor):
    with pytest.raises(ValueError, match="on_missing_image"):
        LlavaDataset(
            llava_dir / "data.json", llava_dir / "images", tokenizer, processor, on_missing_image="x"
        )
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        LlavaDataset(llava_dir / "nothere.json", llava_dir, tokenizer, processor)


def test_build_datasets_llava_holds_out_val(llava_dir, tokenizer, processor):
    splits = {"train": {"data_path": str(llava_dir / "data.json"), "image_folder": str(llava_dir / "images")}}
    out = build_datasets(tokenizer, processor, source="llava", splits=splits, val_size=1, val_seed=3)
    assert set(out) == {"train", "val"} and len(out["train"]) == 2 and len(out["val"]) == 1
    ids = {out["train"][i]["id"] for i in range(2)} | {out["val"][0]["id"]}
    assert ids == {"r0", "r1", "r2"}


def test_encode_text_matches_items_without_touching_images(llava_dir, tokenizer, processor):
    ds = LlavaDataset(llava_dir / "data.json", llava_dir / "images", tokenizer, processor)
    import shutil

    shutil.rmtree(llava_dir / "images")  # encode_text must not need them
    for i in range(len(ds)):
        enc = ds.encode_text(i)
        assert enc["answer"] and enc["prompt_ids"].ndim == 1
    item = ds.encode_text(2)  # the text-only record: its item needs no image either
    assert torch.equal(item["prompt_ids"], ds[2]["prompt_ids"])


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
