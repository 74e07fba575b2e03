"""Fixtures for the model tests: an offline word-level tokenizer, the conf/ YAMLs, tiny VLMs and batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

CONF = Path(__file__).resolve().parents[2] / "conf"
SPECIALS = ["<pad>", "<eos>", "<unk>", "<image>"]
WORDS = (
    "user assistant what is the color shape of a an this that how many are there in picture image "
    "red blue green yellow black white circle square triangle star yes no one two three four five ? . ,"
).split()


def load_conf(group: str, name: str) -> dict:
    cfg = yaml.safe_load((CONF / group / f"{name}.yaml").read_text())
    cfg.pop("defaults", None)  # Hydra's defaults list (e.g. a tiny LLM's optim choice) is not a builder kwarg
    return cfg


@pytest.fixture(scope="session")
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # keeps "<image>" one token
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return tok


def build_tiny(
    tokenizer,
    compressor: str = "quecc",
    visual_tokens: int = 16,
    llm: str = "tiny-xs",
    seed: int = 0,
    projector: str = "mlp2x_gelu",
):
    from vlmscale.models import build_vlm

    torch.manual_seed(seed)
    return build_vlm(
        llm=load_conf("llm", llm),
        vision={**load_conf("vision", "tiny-clip"), "pretrain": None},  # random weights: no pretraining run
        compressor=load_conf("compressor", compressor),
        projector=load_conf("projector", projector),
        visual_tokens=visual_tokens,
        tokenizer=tokenizer,
    )


def encode(tokenizer, texts: list[str], side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a list of texts on ``side``: (ids [B, L], mask [B, L])."""
    rows = [tokenizer.convert_tokens_to_ids(t.split()) for t in texts]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(0, len(r)) if side == "right" else slice(length - len(r), length)
        ids[i, sl] = torch.tensor(r)
        mask[i, sl] = 1
    return ids, mask


@pytest.fixture
def batch(tokenizer):
    """Two image rows and one text-only row, right-padded, with labels on the answers (+ eos) only."""
    prompts = [
        "user <image> what is the color ? assistant",
        "user <image> how many ? assistant",
        "user is this red ? assistant",
    ]
    answers = ["red <eos>", "three star <eos>", "no <eos>"]
    questions = ["what is the color ?", "how many ?", "is this red ?"]
    ids, mask = encode(tokenizer, [f"{p} {a}" for p, a in zip(prompts, answers)])
    labels = torch.full_like(ids, -100)
    for i, (p, a) in enumerate(zip(prompts, answers)):
        start, n = len(p.split()), len(a.split())
        labels[i, start : start + n] = ids[i, start : start + n]
    q_ids, q_mask = encode(tokenizer, questions)
    torch.manual_seed(1)
    return {
        "pixel_values": torch.randn(3, 3, 64, 64),
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "query_ids": q_ids,
        "query_attention_mask": q_mask,
        "has_image": torch.tensor([True, True, False]),
        "prompts": prompts,
        "questions": questions,
    }


@pytest.fixture(scope="session")
def conf():
    """conf(group, name) -> the YAML as a dict."""
    return load_conf


@pytest.fixture(scope="session")
def tiny(tokenizer):
    """tiny(compressor="quecc", visual_tokens=16, llm="tiny-xs", seed=0, projector="mlp2x_gelu") -> a VLM."""

    def make(
        compressor: str = "quecc",
        visual_tokens: int = 16,
        llm: str = "tiny-xs",
        seed: int = 0,
        projector: str = "mlp2x_gelu",
    ):
        return build_tiny(tokenizer, compressor, visual_tokens, llm, seed, projector)

    return make


@pytest.fixture(scope="session")
def enc(tokenizer):
    """enc(texts, side="right") -> (ids, mask) padded on that side."""

    def make(texts: list[str], side: str = "right"):
        return encode(tokenizer, texts, side)

    return make
