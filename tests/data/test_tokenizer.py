import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from vlmscale.data import IMAGE_TOKEN, image_token_id, load_tokenizer
from vlmscale.data import tokenizer as tokenizer_mod

REPO = Path(__file__).resolve().parents[2]


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


def test_offline_tokenizer_is_the_same_file_whoever_trains_it(tmp_path):
    """Two builds in fresh cache folders, one in another process with another hash seed (a sweep's points may
    each build it), write byte-identical tokenizers: the cache key can stand for the file."""
    load_tokenizer(None, tmp_path / "here")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(REPO))
    code = "import sys; from vlmscale.data import load_tokenizer; load_tokenizer(None, sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "there")], env=env, check=True, timeout=300)
    here, there = (
        tokenizer_mod.offline_tokenizer_dir(tmp_path / d) / "tokenizer.json" for d in ("here", "there")
    )
    assert here.read_bytes() == there.read_bytes()


def test_pretrained_path_gets_missing_special_tokens(tmp_path):
    # a tokenizer without pad, eos or <image>, saved like a hub checkpoint and loaded by path
    bare = Tokenizer(models.WordLevel({"hello": 0, "world": 1, "[UNK]": 2}, unk_token="[UNK]"))
    bare.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=bare, unk_token="[UNK]").save_pretrained(tmp_path / "bare")
    tok = load_tokenizer(str(tmp_path / "bare"))
    assert tok(IMAGE_TOKEN, add_special_tokens=False)["input_ids"] == [image_token_id(tok)]
    assert tok.eos_token is not None
    assert tok.pad_token == "[UNK]"  # LLaVA's choice: reuse unk as pad


def test_missing_pretrained_fails_naming_it(tmp_path):
    missing = tmp_path / "nope"  # neither a folder nor a Hub id: transformers says so, naming it
    with pytest.raises(OSError, match=re.escape(f"'{missing}'")):
        load_tokenizer(str(missing))
