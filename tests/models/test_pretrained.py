"""Real checkpoints by path, offline: tiny random models saved with `save_pretrained` in the Hub's layout — a
Qwen2 LM with a ChatML tokenizer, a Llama LM whose tokenizer adds a BOS (the seed's Vicuna setting), a full CLIP
model with its CLIPImageProcessor (resize + centre crop), a full SigLIP model with its processor — loaded through
`llm.pretrained=<dir> vision.pretrained=<dir>`, trained, resumed, evaluated and decoded, in fp32 and bf16."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from vlmscale.data import encode_conversation, load_tokenizer
from vlmscale.data.synthetic import corpus_texts
from vlmscale.models import build_llm, build_vision_tower

CONF = Path(__file__).resolve().parents[2] / "conf"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
FAMILIES = {  # special tokens, their roles, whether the tokenizer adds a BOS, chat template
    "qwen2": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], {"eos_token": "<|im_end|>"}, False, CHATML),
    "llama": (
        ["<unk>", "<s>", "</s>"],
        {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"},
        True,
        None,
    ),
}


def save_tokenizer(family: str, folder: Path):
    """A byte-level BPE over the synthetic suite's words, with the family's special tokens (no <image>: the
    Hub's tokenizers have none; vlmscale adds it and grows the embeddings)."""
    specials, roles, adds_bos, template = FAMILIES[family]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(corpus_texts() + ["USER: ASSISTANT:"], trainer=trainer)
    if adds_bos:
        bos = core.token_to_id("<s>")
        core.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, **roles)
    if template:
        tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)
    return tokenizer


def save_llm(family: str, folder: Path) -> Path:
    tokenizer = save_tokenizer(family, folder)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    if family == "qwen2":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(tie_word_embeddings=True, **common))
    else:
        ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in (("bos", "<s>"), ("eos", "</s>"))}
        config = transformers.LlamaConfig(bos_token_id=ids["bos"], eos_token_id=ids["eos"], **common)
        model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(folder)
    return folder


def save_tower(family: str, folder: Path) -> Path:
    """A full CLIP / SigLIP model (text + vision, as the Hub holds them) and its image processor."""
    vision = dict(
        image_size=32,
        patch_size=4,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
    )
    text = dict(
        vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4
    )
    torch.manual_seed(0)
    if family == "clip":
        model = transformers.CLIPModel(transformers.CLIPConfig(text_config=text, vision_config=vision))
        processor = transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        )  # LLaVA's 336-style preprocessing, at 32 px
    else:
        model = transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=vision))
        processor = transformers.SiglipImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """hub(name) -> a folder laid out as the Hub's: qwen2, llama (LLMs + tokenizers), clip, siglip (towers)."""
    root = tmp_path_factory.mktemp("hub")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            save = save_llm if name in FAMILIES else save_tower
            made[name] = save(name, root / name)
        return made[name]

    return get


# -- loading, piece by piece -------------------------------------------------------------------------------
def test_llama_tokenizer_puts_its_bos_in_front_of_prompt_and_quecc_query(hub):
    tokenizer = load_tokenizer(str(hub("llama")))
    bos = tokenizer.bos_token_id
    assert tokenizer("what colour")["input_ids"][0] == bos  # the checkpoint's own post-processor
    record = [
        {"from": "human", "value": "<image>\nwhat colour is the circle"},
        {"from": "gpt", "value": "red"},
    ]
    enc = encode_conversation(tokenizer, record, has_image=True)
    assert enc["input_ids"][0] == bos and enc["prompt_ids"][0] == bos
    # QueCC's question pass reads the question as the LLM would see it: with the BOS the tokenizer adds
    assert (
        enc["query_ids"][0] == bos
        and enc["query_ids"][1:].tolist()
        == tokenizer("what colour is the circle", add_special_tokens=False)["input_ids"]
    )


def test_qwen2_tokenizer_keeps_its_chat_template_and_gets_an_image_token(hub):
    tokenizer = load_tokenizer(str(hub("qwen2")))
    assert tokenizer.chat_template == CHATML and tokenizer.bos_token is None
    record = [{"from": "human", "value": "<image>\nwhat colour"}, {"from": "gpt", "value": "red"}]
    enc = encode_conversation(tokenizer, record, has_image=True)
    text = tokenizer.decode(enc["input_ids"])
    assert text.startswith("<|im_start|>user\n<image>\nwhat colour<|im_end|>") and text.endswith(
        "<|im_end|>\n"
    )
    answer = tokenizer.decode(enc["input_ids"][enc["labels"] != -100])
    assert answer.startswith("red<|im_end|>")


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_vision_tower_and_processor_load_from_a_full_model_folder(hub, family):
    tower = build_vision_tower(name=family, pretrained=str(hub(family)), multilevel_layers=[1, 2, 3, 4])
    assert type(tower.encoder).__name__ == ("CLIPVisionModel" if family == "clip" else "SiglipVisionModel")
    assert tower.grid == 8 and tower.num_patches == 64
    wide = Image.new("RGB", (96, 48), (200, 30, 30))
    pixels = tower.image_processor(images=wide, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 32, 32)  # CLIP: shortest side to 32 then centre crop; SigLIP: squash to 32
    features = tower(pixels)
    assert features.patches.shape == (1, 64, 32) and features.multilevel.shape == (1, 64, 128)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_llm_loads_in_the_requested_dtype(hub, dtype):
    llm = build_llm(name="llama", pretrained=str(hub("llama")), dtype=dtype)
    assert {p.dtype for p in llm.parameters()} == {getattr(torch, dtype)}
    ids = torch.tensor([[1, 5, 9, 12]])
    assert torch.isfinite(llm(input_ids=ids, labels=ids).loss.float())


# -- the whole path: train, resume, evaluate (greedy decoding) through the Hydra entry ----------------------
def compose(name: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(name, overrides=overrides)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(("llm", "vision"), [("qwen2", "clip"), ("llama", "siglip")])
def test_train_resume_and_evaluate_checkpoints_by_path(hub, llm, vision, dtype, tmp_path, caplog):
    from omegaconf import OmegaConf

    from vlmscale.eval.__main__ import run as evaluate
    from vlmscale.train import run

    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    overrides = [
        f"llm.pretrained={hub(llm)}",
        f"llm.dtype={dtype}",
        f"vision.pretrained={hub(vision)}",
        f"vision.dtype={dtype}",
        "stage=pretrain",  # the LLM frozen: checkpoints leave it out and a resume reloads it by path
        "visual_tokens=4",
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
        "trainer.enable_progress_bar=false",
        "loader.batch_size=4",
        "eval.limit=8",
        "eval.progress=false",
        "data.progress=false",
        "data.sizes={train:64,val:8,test:8}",
        "threads=1",
        f"paths.cache_dir={cache}",
        f"run_dir={run_dir}",
    ]
    first = run(compose("train", overrides))
    assert first["status"] == "done" and first["steps"] == 3
    assert first["config"]["llm"]["dtype"] == first["config"]["vision"]["dtype"] == dtype
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)[
        "state_dict"
    ]
    assert any(k.startswith("vlm.connector.") for k in state)
    assert not any(k.startswith(("vlm.llm.", "vlm.vision.")) for k in state)  # frozen, reloadable by path

    # Re-run (the same command after a crash that left no result.json): the pretrained parts come back from
    # their folders, the connector from the checkpoint, so the final scores are the same.
    (run_dir / "result.json").unlink()
    with caplog.at_level(logging.INFO, logger="vlmscale.train"):
        second = run(compose("train", overrides))
    assert "training is complete" in caplog.text  # the finished checkpoint is evaluated again, not retrained
    assert second["metrics"]["val/loss"] == first["metrics"]["val/loss"]  # the same weights, the same sums
    assert second["metrics"]["error/avg"] == first["metrics"]["error/avg"]

    # `python -m vlmscale.eval ckpt=...` rebuilds everything from the run's result.json and decodes again.
    cfg = compose(
        "eval", [f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}", "device=cpu", f"paths.cache_dir={cache}"]
    )
    metrics = evaluate(OmegaConf.to_container(cfg, resolve=True))
    assert metrics["error/avg"] == first["metrics"]["error/avg"]
    predictions = (run_dir / "eval" / "synthetic.predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 8
