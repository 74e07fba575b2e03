import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from vlmscale.data import IMAGE_TOKEN, image_token_id, load_tokenizer
from vlmscale.data import tokenizer as tokenizer_mod


def test_offline_tokenizer_has_special_tokens(tokenizer):
    image_id = image_token_id(tokenizer)
    assert tokenizer(f"a {IMAGE_TOKEN} b", add_special_tokens=False)["input_ids"].count(image_id) == 1
    assert tokenizer(IMAGE_TOKEN, add_special_tokens=False)["input_ids"] == [image_id]
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None
    assert len({image_id, tokenizer.pad_token_id, tokenizer.eos_token_id}) == 3
    assert 1000 <= len(tokenizer) <= 2000


def test_offline_tokenizer_is_lossless_and_compact(tokenizer):
    for text in ["What color is the triangle?", " K7Q", "Describe the photograph, please!", "ünï 3.5"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    # the suite's words are whole tokens
    assert len(tokenizer(" triangle", add_special_tokens=False)["input_ids"]) == 1


def test_offline_tokenizer_cached_and_reused(cache_dir, tokenizer, monkeypatch):
    folder = tokenizer_mod.offline_tokenizer_dir(cache_dir)
    assert (folder / "tokenizer.json").is_file()
    before = (folder / "tokenizer.json").read_bytes()

    def fail(_):
        raise AssertionError("the cached tokenizer should have been reused")

    monkeypatch.setattr(tokenizer_mod, "_train_offline", fail)
    again = load_tokenizer(None, cache_dir)
    assert again.get_vocab() == tokenizer.get_vocab()
    assert (folder / "tokenizer.json").read_bytes() == before
    assert not [p for p in cache_dir.iterdir() if ".tmp-" in p.name]


def test_offline_tokenizer_deterministic(tmp_path, cache_dir):
    load_tokenizer(None, tmp_path)
    a = tokenizer_mod.offline_tokenizer_dir(tmp_path) / "tokenizer.json"
    b = tokenizer_mod.offline_tokenizer_dir(cache_dir) / "tokenizer.json"
    assert a.read_bytes() == b.read_bytes()


def test_pretrained_path_gets_missing_special_tokens(tmp_path):
    # a tokenizer without pad, eos or <image>, saved like a hub checkpoint and loaded by path
    bare = Tokenizer(models.WordLevel({"hello": 0, "world": 1, "[UNK]": 2}, unk_token="[UNK]"))
    bare.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=bare, unk_token="[UNK]").save_pretrained(tmp_path / "bare")
    tok = load_tokenizer(str(tmp_path / "bare"))
    assert tok(IMAGE_TOKEN, add_special_tokens=False)["input_ids"] == [image_token_id(tok)]
    assert tok.eos_token is not None
    assert tok.pad_token == "[UNK]"  # LLaVA's choice: reuse unk as pad


def test_missing_pretrained_fails_loudly(tmp_path):
    with pytest.raises((OSError, ValueError)):
        load_tokenizer(str(tmp_path / "nope"))
