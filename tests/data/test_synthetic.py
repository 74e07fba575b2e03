import hashlib
import json
import threading

import pytest

from vlmscale.data import build_datasets, chance_levels, ensure_synthetic
from vlmscale.data import synthetic as syn

SIZES = {"train": 36, "val": 12, "test": 12}
ANSWERS = {
    "colour": set(syn.COLOURS),
    "count": set(syn.COUNT_WORDS),
    "compare": {"yes", "no"},
    "spatial": {"left", "right", "above", "below"},
    "exist": {"yes", "no"},
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
        weights = syn.DEFAULT_FAMILY_WEIGHTS
        for f in syn.FAMILIES:  # exactly proportional to the family weights (largest remainder)
            assert abs(families.count(f) - n * weights[f] / sum(weights.values())) < 1
        for r in records:
            assert r["id"].startswith(f"{split}-") and r["id"] not in seen
            seen.add(r["id"])
            assert (suite / "images" / r["image"]).is_file()
            assert r["category"] == syn.FAMILIES[r["family"]]
            human, gpt = r["conversations"]
            assert human["from"] == "human" and human["value"].startswith("<image>\n")
            answer = gpt["value"]
            if r["family"] == "read":
                glyphs = answer.split(" ")
                assert len(glyphs) == syn.OCR_LENGTH and set(glyphs) <= set(syn.OCR_ALPHABET)
            else:
                assert answer in ANSWERS[r["family"]]
    meta = json.loads((suite / "meta.json").read_text())
    assert meta["params"]["sizes"] == SIZES


def _shown(img):
    pixels = {rgb for _, rgb in img.getcolors(img.width * img.height)}
    return {name for name, rgb in syn.COLOURS.items() if rgb in pixels}


def test_scenes_show_the_answer():
    """Each family's scene carries its answer: checked from the pixels and from the layout it reports."""
    seen = set()
    for family, s in syn.generate_scenes("check", 240, 3, 64, syn.DEFAULT_FAMILY_WEIGHTS):
        seen.add(family)
        objects = [(syn.SHAPES[q[0] - 1], list(syn.COLOURS)[q[1] - 1]) for q in s.quadrants if q[0]]
        assert {c for _, c in objects} == _shown(s.image)
        q = s.question
        if family == "colour":
            assert [c for _, c in objects] == [s.answer]
        elif family == "count":
            n = sum(1 for sh, c in objects if f"{sh}s" in q or f" {c} " in q)
            assert syn.COUNT_WORDS[n - 1] == s.answer
        elif family == "compare":
            assert len(objects) == 2 and (objects[0][1] == objects[1][1]) == (s.answer == "yes")
        elif family == "exist":
            asked = next((sh, c) for sh in syn.SHAPES for c in syn.COLOURS if f"{c} {sh}" in q)
            assert (asked in objects) == (s.answer == "yes")
            assert (asked[1] in {c for _, c in objects}) == (s.answer == "yes")  # colour alone decides
        elif family == "spatial":
            assert len(objects) == 2 and s.answer in ANSWERS["spatial"]
        else:  # read: the glyphs sit in distinct 16-pixel cells, read in row-major order
            assert s.cells.count(0) == syn.CELLS**2 - syn.OCR_LENGTH and not any(
                s.quadrants[i][0] for i in range(4)
            )
            assert " ".join(syn.OCR_ALPHABET[g - 1] for g in s.cells if g) == s.answer
            assert len({i // syn.CELLS for i, g in enumerate(s.cells) if g}) == 1  # one line of text
    assert seen == set(syn.FAMILIES)


def test_spatial_answer_matches_the_positions():
    for family, s in syn.generate_scenes("check", 300, 4, 64, {"spatial": 1.0}):
        assert family == "spatial"
        pos = {}
        for quad, (shape, colour) in enumerate(s.quadrants):
            if shape:
                pos[f"{list(syn.COLOURS)[colour - 1]} {syn.SHAPES[shape - 1]}"] = divmod(quad, syn.QUADRANTS)
        first, second = sorted(pos, key=s.question.index)  # the question names the asked object first
        (ra, ca), (rb, cb) = pos[first], pos[second]
        expected = {"left": ca < cb, "right": ca > cb, "above": ra < rb, "below": ra > rb}
        assert expected[s.answer]


def test_every_family_uses_its_paraphrases():
    questions = {}
    for family, s in syn.generate_scenes("check", 600, 5, 64, syn.DEFAULT_FAMILY_WEIGHTS):
        questions.setdefault(family, set()).add(s.question.split(" ")[0])
    assert all(len(openings) >= 2 for openings in questions.values()), questions


def test_chance_is_what_a_blind_guess_gets():
    """A guess that ignores the image (the most frequent answer per family and question kind) scores about
    the documented chance level on a large sample."""
    from collections import Counter

    answers = {}
    weights = {f: 1.0 for f in syn.FAMILIES if f != "read"}
    for family, s in syn.generate_scenes("chance", 4000, 6, 64, weights):
        kind = "vertical" if "above" in s.question else "other"  # spatial asks one of two answer pairs
        answers.setdefault(family, {}).setdefault(kind, Counter())[s.answer] += 1
    chance = chance_levels()
    for family, kinds in answers.items():
        right = sum(c.most_common(1)[0][1] for c in kinds.values())
        total = sum(sum(c.values()) for c in kinds.values())
        assert right / total == pytest.approx(chance[family], abs=0.05), family


def test_ocr_chance_is_what_a_blind_reader_scores_per_glyph():
    """The most frequent glyph at every position, scored by the suite's own OCR rule, reads about one glyph
    in ten: the documented OCR chance."""
    from collections import Counter

    from vlmscale.eval.tasks.synthetic import glyph_accuracy

    lines = [s.answer for _, s in syn.generate_scenes("chance", 3000, 6, 64, {"read": 1.0})]
    glyphs = [line.split() for line in lines]
    guess = " ".join(Counter(g[i] for g in glyphs).most_common(1)[0][0] for i in range(syn.OCR_LENGTH))
    blind = sum(glyph_accuracy(guess, line) for line in lines) / len(lines)
    assert blind == pytest.approx(chance_levels()["ocr"], abs=0.02)


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
    assert c["colour"] == pytest.approx(1 / 6) and c["count"] == pytest.approx(1 / 3)
    assert c["compare"] == c["exist"] == c["spatial"] == 0.5
    assert c["reasoning"] == pytest.approx((1 / 6 + 1 / 3 + 3 * 1 / 2) / 5)
    assert c["ocr"] == c["read"] == pytest.approx(1 / 10)  # per glyph, as the suite scores OCR
    assert c["avg"] == pytest.approx((c["reasoning"] + c["ocr"]) / 2)
    assert chance_levels({"exist": 1.0, "read": 1.0})["reasoning"] == 0.5


def test_default_test_split_bounds_the_standard_error():
    """~1000 test questions per category: a point's error has a standard error <= 0.016 per category."""
    n = syn.DEFAULT_SIZES["test"]
    weights = syn.DEFAULT_FAMILY_WEIGHTS
    for category in ("reasoning", "ocr"):
        share = sum(w for f, w in weights.items() if syn.FAMILIES[f] == category) / sum(weights.values())
        assert 0.5 / (n * share) ** 0.5 <= 0.016


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="splits"):
        ensure_synthetic(tmp_path, sizes={"dev": 3})
    with pytest.raises(ValueError, match="families"):
        ensure_synthetic(tmp_path, family_weights={"colour": 1, "jokes": 1})
