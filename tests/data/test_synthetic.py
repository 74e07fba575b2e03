import hashlib
import json
import threading

import pytest

from vlmscale.data import build_datasets, chance_levels, ensure_synthetic
from vlmscale.data import synthetic as syn

SIZES = {"train": 25, "val": 10, "test": 10}
ANSWERS = {
    "colour": set(syn.COLOURS),
    "count": set(syn.COUNT_WORDS),
    "exist": {"yes", "no"},
    "spatial": {"left", "right"},
}


def digest(folder):
    """Hash of every file under a suite folder (JSON and PNG bytes), by relative path."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return ensure_synthetic(tmp_path_factory.mktemp("syn"), seed=0, sizes=SIZES, progress=False)


def test_same_seed_same_bytes(suite, tmp_path):
    again = ensure_synthetic(tmp_path, seed=0, sizes=SIZES, progress=False)
    assert again.name == suite.name and again != suite
    assert digest(again) == digest(suite)


def test_different_seed_differs(suite, tmp_path):
    other = ensure_synthetic(tmp_path, seed=1, sizes=SIZES, progress=False)
    assert other.name != suite.name
    a, b = (json.loads((f / "train.json").read_text()) for f in (suite, other))
    assert [r["conversations"] for r in a] != [r["conversations"] for r in b]
    assert (suite / "images/train/000000.png").read_bytes() != (
        other / "images/train/000000.png"
    ).read_bytes()


def test_splits_sizes_families_and_answers(suite):
    seen = set()
    for split, n in SIZES.items():
        records = json.loads((suite / f"{split}.json").read_text())
        assert len(records) == n
        families = [r["family"] for r in records]
        assert (
            max(families.count(f) for f in syn.FAMILIES) - min(families.count(f) for f in syn.FAMILIES) <= 1
        )
        for r in records:
            assert r["id"].startswith(f"{split}-") and r["id"] not in seen
            seen.add(r["id"])
            assert (suite / "images" / r["image"]).is_file()
            assert r["category"] == syn.FAMILIES[r["family"]]
            human, gpt = r["conversations"]
            assert human["from"] == "human" and human["value"].startswith("<image>\n")
            answer = gpt["value"]
            assert " " not in answer
            if r["family"] == "read":
                assert 2 <= len(answer) <= 3 and set(answer) <= set(syn.OCR_ALPHABET)
            else:
                assert answer in ANSWERS[r["family"]]
    meta = json.loads((suite / "meta.json").read_text())
    assert meta["params"]["sizes"] == SIZES


def test_scenes_show_the_answer(tmp_path):
    """The coarse scenes carry their answer: colour shows only the answer's colour, count one colour,
    exist the asked colour exactly when the answer is yes, spatial two colours."""
    from PIL import Image

    folder = ensure_synthetic(tmp_path, seed=3, sizes={"train": 60, "val": 5, "test": 5}, progress=False)
    seen = set()
    for r in json.loads((folder / "train.json").read_text()):
        img = Image.open(folder / "images" / r["image"]).convert("RGB")
        pixels = {rgb for _, rgb in img.getcolors(img.width * img.height)}
        shown = {name for name, rgb in syn.COLOURS.items() if rgb in pixels}
        question, answer = r["conversations"][0]["value"], r["conversations"][1]["value"]
        if r["family"] == "colour":
            assert shown == {answer}
        elif r["family"] == "count":
            assert len(shown) == 1
        elif r["family"] == "exist":
            asked = next(c for c in syn.COLOURS if f" {c} " in question)
            assert (asked in shown) == (answer == "yes") and 1 <= len(shown) <= 2
        elif r["family"] == "spatial":
            assert len(shown) == 2
        seen.add(r["family"])
    assert seen == set(syn.FAMILIES)


def test_generated_once_and_reused(suite, monkeypatch):
    monkeypatch.setattr(
        syn, "generate_split", lambda *a, **k: (_ for _ in ()).throw(AssertionError("regenerated"))
    )
    assert ensure_synthetic(suite.parent, seed=0, sizes=SIZES, progress=False) == suite


def test_concurrent_generation_is_safe(tmp_path):
    results, errors = [], []

    def run():
        try:
            results.append(
                ensure_synthetic(tmp_path, seed=2, sizes={"train": 10, "val": 5, "test": 5}, progress=False)
            )
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [results[0].name]
    assert len(json.loads((results[0] / "train.json").read_text())) == 10


def test_read_back_through_llava_loader(suite, tokenizer, processor):
    data = build_datasets(tokenizer, processor, cache_dir=suite.parent, seed=0, sizes=SIZES, progress=False)
    assert {k: len(v) for k, v in data.items()} == SIZES
    records = json.loads((suite / "test.json").read_text())
    for i in range(len(records)):
        item = data["test"][i]
        assert item["id"] == records[i]["id"]
        assert item["answer"] == records[i]["conversations"][1]["value"]
        assert item["category"] == records[i]["category"]
        assert item["pixel_values"].shape == (3, 64, 64)
        assert (
            tokenizer.decode(item["query_ids"]) == records[i]["conversations"][0]["value"].split("\n", 1)[1]
        )


def test_chance_levels():
    c = chance_levels()
    assert c["colour"] == pytest.approx(1 / 6) and c["count"] == pytest.approx(1 / 4)
    assert c["exist"] == c["spatial"] == 0.5
    assert c["reasoning"] == pytest.approx((1 / 6 + 1 / 4 + 1 / 2 + 1 / 2) / 4)
    assert c["ocr"] < 0.001
    assert chance_levels({"exist": 1.0, "read": 1.0})["reasoning"] == 0.5


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="splits"):
        ensure_synthetic(tmp_path, sizes={"dev": 3})
    with pytest.raises(ValueError, match="families"):
        ensure_synthetic(tmp_path, family_weights={"colour": 1, "jokes": 1})
