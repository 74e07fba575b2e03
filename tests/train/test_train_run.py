"""`vlmscale.train.run` end to end on the tiny VLM: result.json, stage hand-over, failures, and eval of the
trained checkpoint on every benchmark format. In-process (Hydra compose) to skip interpreter start-ups."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from vlmscale.results import read_result
from vlmscale.train import run

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def config(cache, run_dir, *overrides):
    base = [
        "llm=tiny-xs",
        "vision=tiny-clip-random",  # plumbing only: no tower pretraining run
        "visual_tokens=4",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "eval.limit=16",
        "eval.progress=false",
        "data.progress=false",
        "threads=1",
        f"paths.cache_dir={cache}",
        f"run_dir={run_dir}",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=base + list(overrides))


@pytest.fixture(scope="module")
def pretrained(cache, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pretrain")
    record = run(config(cache, run_dir, "stage=pretrain"))
    return run_dir, record


def test_result_json_has_every_field_the_sweeps_read(pretrained):
    run_dir, record = pretrained
    assert read_result(run_dir) == record
    assert record["status"] == "done" and record["error"] is None
    assert record["llm"] == "tiny-xs" and record["visual_tokens"] == 4 and record["stage"] == "pretrain"
    assert record["compressor"] == "quecc" and record["projector"] == "mlp2x_gelu"
    n, q, t = record["llm_params"], record["text_tokens"], record["visual_tokens"]
    assert n > record["llm_params_non_embedding"] > 0 and q > 3
    assert record["inference_flops"] == pytest.approx(2 * n * (q + t))
    assert record["inference_flops_full"] > record["inference_flops"]
    metrics = record["metrics"]
    for key in ("error/reasoning", "error/ocr", "error/avg", "val/loss"):
        assert key in metrics and metrics[key] is not None
    assert 0.0 <= metrics["error/avg"] <= 1.0
    assert record["steps"] == 4 and record["wall_time_s"] > 0
    assert len(record["config_hash"]) == 16 and record["git_sha"]
    assert record["config"]["llm"]["name"] == "tiny-xs" and "hydra" not in record["config"]
    assert (run_dir / "eval" / "synthetic.predictions.jsonl").exists()
    assert (run_dir / "logs" / "version_0" / "metrics.csv").exists()
    assert record["logs"]["csv"] == ["logs/version_0/metrics.csv"]


def test_checkpoint_is_plain_data(pretrained):
    run_dir, _ = pretrained
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert any(k.startswith("vlm.connector.") for k in ckpt["state_dict"])
    # the tiny LLM is random: its weights must travel with the checkpoint, or a resume rebuilds others
    assert any(k.startswith("vlm.llm.") for k in ckpt["state_dict"])


def test_finetune_starts_from_the_pretrain_connector_and_trains_the_llm(pretrained, cache, tmp_path):
    from vlmscale.build import build_module

    run_dir, _ = pretrained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    cfg = config(cache, tmp_path, "stage=finetune", f"init_from={ckpt}", "optim.lr=2e-5")
    module, _ = build_module(cfg)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    for name, value in module.vlm.connector.state_dict().items():
        assert torch.equal(value, saved[f"vlm.connector.{name}"]), name
    assert all(p.requires_grad for p in module.vlm.llm.parameters())
    assert not any(p.requires_grad for p in module.vlm.vision.parameters())

    pretrain_module, _ = build_module(config(cache, tmp_path, "stage=pretrain"))
    assert not any(p.requires_grad for p in pretrain_module.vlm.llm.parameters())
    assert all(p.requires_grad for p in pretrain_module.vlm.connector.parameters())

    record = run(cfg)
    assert record["status"] == "done" and record["stage"] == "finetune"


def test_init_from_a_missing_checkpoint_names_the_fix(cache, tmp_path):
    from vlmscale.build import build_module

    with pytest.raises(FileNotFoundError, match="init_from=<pretrain run dir>/checkpoints/last.ckpt"):
        build_module(config(cache, tmp_path, "stage=finetune", f"init_from={tmp_path / 'nope.ckpt'}"))


def test_training_reduces_the_loss(cache, tmp_path):
    record = run(
        config(
            cache,
            tmp_path,
            "stage=finetune",
            "trainer.max_steps=40",
            "optim.lr=3e-3",
            "eval_during_training.generate=false",
            "eval.limit=4",
        )
    )
    log = pd.read_csv(tmp_path / "logs" / "version_0" / "metrics.csv")
    losses = log["train/loss"].dropna().to_numpy()
    assert len(losses) >= 30
    assert losses[-5:].mean() < 0.75 * losses[:5].mean(), losses
    assert record["metrics"]["val/loss"] < losses[:5].mean()


def test_a_failing_run_still_writes_its_result_and_raises(cache, tmp_path):
    with pytest.raises(ValueError, match="valid values are"):
        run(config(cache, tmp_path, "visual_tokens=50"))
    record = read_result(tmp_path)
    assert record["status"] == "failed" and record["error"]["type"] == "ConfigError"
    assert "visual_tokens=50" in record["error"]["message"] and "Traceback" in record["error"]["traceback"]
    assert record["visual_tokens"] == 50 and record["config_hash"]


def test_a_done_run_is_skipped_not_redone(pretrained, cache):
    run_dir, record = pretrained
    before = (run_dir / "result.json").stat().st_mtime_ns
    again = run(config(cache, run_dir, "stage=pretrain", "threads=2"))  # threads is not part of the hash
    assert again == record and (run_dir / "result.json").stat().st_mtime_ns == before


def test_last_checkpoint_is_the_final_model_whatever_the_cadence(cache, tmp_path):
    run(config(cache, tmp_path, "trainer.max_steps=7", "checkpoint.every_n_train_steps=5", "eval.limit=4"))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 7


def test_frozen_pretrained_weights_stay_out_of_checkpoints_even_when_tied(cache, tmp_path):
    from vlmscale.build import build_module

    module, _ = build_module(config(cache, tmp_path, "stage=pretrain"))
    assert module.vlm.llm.model.config.tie_word_embeddings
    module.reloadable_parts = ("llm",)  # as for a pretrained (reloadable by name) LLM
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert not [k for k in checkpoint["state_dict"] if k.startswith("vlm.llm.")]
    assert any(k.startswith("vlm.connector.") for k in checkpoint["state_dict"])


def test_resume_refuses_a_checkpoint_from_another_config(pretrained, cache, tmp_path):
    import shutil

    run_dir, _ = pretrained
    copy = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoints", copy / "checkpoints")
    with pytest.raises(ValueError, match="resume=never"):
        run(config(cache, copy, "stage=pretrain", "optim.lr=5e-3"))
    assert read_result(copy)["status"] == "failed"
    # starting over is one override away
    assert run(config(cache, copy, "stage=pretrain", "optim.lr=5e-3", "resume=never"))["status"] == "done"


def _copy_run(run_dir, to):
    import shutil

    shutil.copytree(run_dir, to, ignore=shutil.ignore_patterns("eval"))
    return to


def test_changed_eval_settings_reevaluate_the_finished_checkpoint_without_retraining(
    pretrained, cache, tmp_path
):
    run_dir, before = pretrained
    copy = _copy_run(run_dir, tmp_path / "run")
    after = run(config(cache, copy, "stage=pretrain", "eval.limit=4"))
    assert after["status"] == "done" and after["steps"] == before["steps"]
    assert after["training_hash"] == before["training_hash"] and after["config_hash"] != before["config_hash"]
    assert after["logs"]["csv"] == ["logs/version_0/metrics.csv", "logs/version_1/metrics.csv"]
    second = pd.read_csv(copy / "logs" / "version_1" / "metrics.csv")
    assert "train/loss" not in second or second["train/loss"].isna().all(), "no training step ran"


def test_a_run_short_of_its_step_count_is_not_done(cache, tmp_path):
    with pytest.raises(RuntimeError, match="training stopped at step 0 of trainer.max_steps=4"):
        run(config(cache, tmp_path, "+trainer.limit_train_batches=0"))
    assert read_result(tmp_path)["status"] == "failed"


def test_a_failed_rerun_keeps_the_done_result(pretrained, cache, tmp_path):
    run_dir, before = pretrained
    copy = _copy_run(run_dir, tmp_path / "run")
    with pytest.raises(ValueError, match="eval.tasks: 'gqa' has no data"):
        run(config(cache, copy, "stage=pretrain", "eval.tasks=[gqa]", f"eval.data_dir={tmp_path}"))
    assert read_result(copy)["status"] == "failed"
    assert json.loads((copy / "result-previous.json").read_text())["metrics"] == before["metrics"]


def test_init_from_a_sharded_checkpoint_folder_says_how_to_convert(cache, tmp_path):
    from vlmscale.build import build_module

    (tmp_path / "last.ckpt").mkdir()
    with pytest.raises(ValueError, match="convert_zero_checkpoint_to_fp32_state_dict"):
        build_module(config(cache, tmp_path, "stage=finetune", f"init_from={tmp_path / 'last.ckpt'}"))
