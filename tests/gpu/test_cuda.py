"""On CUDA: bf16 autocast training, greedy generation, and DeepSpeed checkpoint folders (resume, conversion
for eval) through the Hydra entry. Marked gpu; they skip without CUDA (see conftest.py)."""

from __future__ import annotations

import json
import logging
import types

import pytest
import torch
from gpu_helpers import CONF, random_batch, tiny_vlm

pytestmark = pytest.mark.gpu


def lightning_module(vlm, lr: float = 2e-3):
    from vlmscale.lit import VLMLightningModule

    # Outside validation the module reads only eos_token_id / chat_template from the tokenizer.
    tokenizer = types.SimpleNamespace(eos_token_id=vlm.eos_token_id, chat_template=None)
    return VLMLightningModule(
        vlm, tokenizer, stage="finetune", optim={"lr": lr, "warmup_ratio": 0.0, "min_lr_ratio": 1.0}
    )


def test_bf16_autocast_training_overfits_a_batch_with_fp32_master_weights():
    pytest.importorskip("PIL", reason="vlmscale.lit imports vlmscale.data, which needs Pillow")
    import lightning as L
    from torch.utils.data import DataLoader

    vlm, vocab = tiny_vlm()
    batch = random_batch(vocab, vlm.image_token_id)
    samples = [{k: v[i] for k, v in batch.items()} for i in range(4)] * 30
    losses: list[float] = []
    trained: list[tuple[bool, torch.dtype]] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

        def on_train_end(self, trainer, pl_module):  # before teardown moves the module back to the CPU
            parts = list(vlm.llm.parameters()) + list(vlm.connector.parameters())
            trained.extend((p.is_cuda, p.dtype) for p in parts)

    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_steps=30,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record()],
    )
    trainer.fit(lightning_module(vlm), DataLoader(samples, batch_size=4))
    assert len(losses) == 30 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0], losses
    assert trained and all(cuda and dtype == torch.float32 for cuda, dtype in trained)


def test_greedy_generation_on_cuda_matches_cpu():
    vlm, vocab = tiny_vlm()
    batch = random_batch(vocab, vlm.image_token_id, batch=3, length=12, seed=1)
    batch["attention_mask"][1, :3] = 0  # one left-padded row
    args = [
        batch[k] for k in ("pixel_values", "input_ids", "attention_mask", "query_ids", "query_attention_mask")
    ]
    cpu = vlm.eval().generate(*args, has_image=batch["has_image"], max_new_tokens=6)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        gpu = vlm.cuda().generate(
            *[a.cuda() for a in args], has_image=batch["has_image"].cuda(), max_new_tokens=6
        )
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)
    half = vlm.to(torch.bfloat16).generate(*[a.cuda() for a in args], max_new_tokens=6)
    assert half.shape[0] == 3 and half.dtype == torch.long and 1 <= half.shape[1] <= 6


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def compose(config_name: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name, overrides=overrides)


# ZeRO-3: the resumed run's end-of-run trainer.validate once found CLIP's position_ids buffer on the CPU (the
# engine does not move a module ZeRO-3 already partitioned; VLMLightningModule.setup moves it now).
@pytest.mark.parametrize("trainer", ["deepspeed_zero2", "deepspeed_zero3"])
def test_deepspeed_checkpoint_folder_resumes_and_converts_for_eval(trainer, cache, tmp_path, caplog):
    pytest.importorskip("deepspeed")
    pytest.importorskip("hydra")
    pytest.importorskip("PIL", reason="the synthetic suite draws its images with Pillow")
    from omegaconf import OmegaConf

    from vlmscale.checkpoints import STAMPS_FILE
    from vlmscale.convert import convert_deepspeed
    from vlmscale.eval.__main__ import run as evaluate
    from vlmscale.train import run

    run_dir = tmp_path / "run"

    def train():
        overrides = [
            f"trainer={trainer}",
            "trainer.devices=1",
            "llm=tiny-xs",
            "visual_tokens=4",
            "trainer.max_steps=4",
            "trainer.val_check_interval=4",
            "trainer.enable_progress_bar=false",
            "checkpoint.every_n_train_steps=2",
            "eval.limit=16",
            "eval.progress=false",
            "data.progress=false",
            f"paths.cache_dir={cache}",
            f"run_dir={run_dir}",
        ]
        if trainer == "deepspeed_zero3":
            # Partition every parameter, as the real sizes do (1e6 keeps all tiny ones whole and hides bugs).
            overrides.append("trainer.strategy.config.zero_optimization.stage3_param_persistence_threshold=0")
        return run(compose("train", overrides))

    first = train()
    assert first["status"] == "done" and first["steps"] == 4
    assert first["llm_params"] > first["llm_params_non_embedding"] > 0  # counted whole under ZeRO-3 too
    folder = run_dir / "checkpoints" / "last.ckpt"
    assert folder.is_dir(), "DeepSpeed writes a checkpoint folder"
    stamps = json.loads((folder / STAMPS_FILE).read_text())
    assert stamps == {"training_hash": first["training_hash"], "global_step": 4}

    # A run that died after its last save has no result.json: the same command takes the folder up again (here
    # complete, so fit restores it and the end-of-run validate and eval run in the same process).
    (run_dir / "result.json").unlink()
    with caplog.at_level(logging.INFO, logger="vlmscale.train"):
        second = train()
    assert second["status"] == "done" and second["steps"] == 4, second.get("error")
    assert f"training is complete in {folder} (step 4)" in caplog.text

    converted = convert_deepspeed(folder, run_dir / "checkpoints" / "last-fp32.ckpt")
    state = torch.load(converted, map_location="cpu", weights_only=True)["state_dict"]
    assert any(k.startswith("vlm.connector.") for k in state) and any(k.startswith("vlm.llm.") for k in state)
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())

    cfg = compose("eval", [f"ckpt={converted}", "limit=8", "eval.progress=false", f"paths.cache_dir={cache}"])
    metrics = evaluate(OmegaConf.to_container(cfg, resolve=True))
    assert any(k.startswith("error/") for k in metrics), metrics
