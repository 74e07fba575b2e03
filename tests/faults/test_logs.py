"""Logs survive attempts: each attempt writes its own CSV folder, and W&B continues one run id per folder."""

from pathlib import Path

from hydra import compose, initialize_config_dir

from vlmscale.build import build_loggers, wandb_run_id

CONF = Path(__file__).resolve().parents[2] / "conf"


def loggers(run_dir, *overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return build_loggers(compose("train", overrides=list(overrides)), run_dir)


def test_each_attempt_gets_its_own_csv_folder(tmp_path):
    first = loggers(tmp_path)[0]
    first.log_metrics({"train/loss": 1.0}, step=0)
    first.save()
    second = loggers(tmp_path)[0]
    second.log_metrics({"train/loss": 0.5}, step=1)
    second.save()
    assert (tmp_path / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[1].startswith("0,")
    assert (tmp_path / "logs" / "version_1" / "metrics.csv").read_text().splitlines()[1].startswith("1,")


def test_wandb_resumes_the_run_folder_s_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_id = wandb_run_id(tmp_path)
    assert wandb_run_id(tmp_path) == run_id and wandb_run_id(tmp_path / "other") != run_id
    wandb = loggers(tmp_path, "logger=wandb")[1]
    assert wandb._wandb_init["id"] == run_id and wandb._wandb_init["resume"] == "allow"
