"""Tokenizers: a real one from the hub, or the project's offline byte-level BPE, trained once and cached.

The offline tokenizer is trained with ``tokenizers`` on the synthetic suite's words, the plain chat template's
words and a fixed list of common English words (so LLaVA-style text also tokenises into short pieces). Being
byte-level it encodes any text losslessly. It is saved as an HF tokenizer under
``<cache>/tokenizer-bpe-v<version>-<hash>`` (file lock + temp folder renamed into place, so concurrent sweep
jobs build it once) and loaded from there afterwards.

Every tokenizer returned by :func:`load_tokenizer` has ``IMAGE_TOKEN`` as one special id, a pad and an eos.
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from vlmscale.contract import IMAGE_TOKEN, default_cache_dir
from vlmscale.data.synthetic import corpus_texts, params_key, publish_dir

log = logging.getLogger(__name__)

PAD_TOKEN = "<pad>"
EOS_TOKEN = "</s>"
TOKENIZER_VERSION = 1
OFFLINE_VOCAB_SIZE = 1536

# Words of the plain template (see conversation.py) and of LLaVA's instructions.
TEMPLATE_TEXTS = [
    "USER:",
    "ASSISTANT:",
    "USER: What is in the image? ASSISTANT: A photo.",
    "A chat between a curious user and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "Answer the question using a single word or phrase.",
    "Give a brief description of the image. Describe the image concisely. Render a clear and concise summary.",
]

# A fixed list of common English words (ours, alphabetical within a few themes).
ENGLISH_WORDS = """
a about above after again against all also always an and animal answer any are around as at away back
background be because been before behind being below best between big black blue board boat body book both
bottom box boy brown building but by can car cat center chair child children city clear close clothing color
colors colour come could count cup day describe description detail detailed different do does dog door down
each eight empty every face far few field find first five floor flower food for four from front game girl
give glass go good grass gray green ground group hair hand has have he head her here him his holding horse
house how i if image in inside is it its kind large last left light like line little long look made make man
many may men more most mountain much must near never new next nine no not number of off on one only open or
orange other our out outside over paper part people person phrase photo picture pink place plate play player
playing point purple question read red right road room round same scene see seven shape shirt short shown
side sign single sitting six size sky small snow some something square standing street summary table take
tall ten text than that the their them then there these they thing this three through time to top train
tree triangle two under up use used using very view wall was water way wearing what when where which while
white who why will window with woman women word words would write yellow yes you your zero
""".split()


def _offline_corpus() -> list[str]:
    words = ENGLISH_WORDS
    texts = corpus_texts() + TEMPLATE_TEXTS
    texts += [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    texts += [w.capitalize() for w in words]
    return texts


def _offline_params() -> dict:
    return {
        "version": TOKENIZER_VERSION,
        "vocab_size": OFFLINE_VOCAB_SIZE,
        "corpus": params_key({"texts": _offline_corpus()}),
    }


def offline_tokenizer_dir(cache_dir: str | Path | None = None) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    params = _offline_params()
    return root / f"tokenizer-bpe-v{params['version']}-{params_key(params)}"


def _train_offline(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=OFFLINE_VOCAB_SIZE,
        min_frequency=1,
        special_tokens=[PAD_TOKEN, EOS_TOKEN, IMAGE_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Several repetitions so frequent words merge first; order is fixed, so training is deterministic.
    corpus = _offline_corpus()
    tok.train_from_iterator(corpus * 4, trainer=trainer, length=len(corpus) * 4)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN, model_max_length=1_000_000
    )
    _ensure_special_tokens(hf)
    hf.save_pretrained(str(out))


def _ensure_special_tokens(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Add ``IMAGE_TOKEN`` (special, one id), an eos and a pad where missing; returns the same object."""
    special = set(tokenizer.all_special_tokens)
    if IMAGE_TOKEN not in special:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": [IMAGE_TOKEN]}, replace_extra_special_tokens=False
        )
    if tokenizer.eos_token is None:
        tokenizer.add_special_tokens({"eos_token": EOS_TOKEN})
    if tokenizer.pad_token is None:
        # LLaVA's choice for LLaMA-style tokenizers: reuse unk, else eos (attention masks come from lengths,
        # so a pad that equals eos is harmless); only add a new token when neither exists.
        if tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            tokenizer.pad_token = tokenizer.eos_token
    ids = tokenizer(IMAGE_TOKEN, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] != tokenizer.convert_tokens_to_ids(IMAGE_TOKEN):
        raise RuntimeError(
            f"{IMAGE_TOKEN!r} does not encode to one id with {type(tokenizer).__name__}: {ids}"
        )
    return tokenizer


def load_tokenizer(
    pretrained: str | None = None, cache_dir: str | Path | None = None
) -> PreTrainedTokenizerBase:
    """The LLM's tokenizer (``pretrained``: HF name or local path) or the offline BPE (``pretrained=None``).

    ``cache_dir`` is the project's cache (offline tokenizer); it defaults to ``$VLMSCALE_CACHE`` or
    ``~/.cache/vlmscale``. The returned tokenizer always has ``IMAGE_TOKEN`` (one special id), a pad token and
    an eos token; the model resizes its embeddings to ``len(tokenizer)``.
    """
    if pretrained:
        tokenizer = AutoTokenizer.from_pretrained(pretrained)
    else:
        folder = offline_tokenizer_dir(cache_dir)
        if not folder.is_dir():
            log.info("training the offline BPE tokenizer into %s", folder)
        publish_dir(folder, _train_offline)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return _ensure_special_tokens(tokenizer)


def image_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return int(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
