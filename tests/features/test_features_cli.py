"""python -m vlmscale.features build: end to end (a progress bar, the entry's folder and size, the entry a
training run then reads), and user errors as one message with exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from hydra import compose, initialize_config_dir

from vlmscale.features import entry_bytes
from vlmscale.features.__main__ import main
from vlmscale.features.store import is_complete

REPO = Path(__file__).resolve().parents[2]
TOWER = ["vision=tiny-clip-random", "threads=1"]
SMALL = [*TOWER, "data.sizes={train: 12, val: 4, test: 4}", "data.progress=false"]


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), HYDRA_FULL_ERROR="1")
    cmd = [sys.executable, "-m", "vlmscale.features", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def entries(cache) -> list[Path]:
    return [p for p in Path(cache).iterdir() if p.name.startswith("features-")]


def test_build_prints_the_entry_and_its_size_and_training_reads_it(tmp_path):
    from vlmscale.build import build_datamodule, build_module

    proc = cli("build", *SMALL, "vision.feature_cache=auto", f"paths.cache_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder, size = proc.stdout.strip().splitlines()
    assert entries(tmp_path) == [Path(folder)] and is_complete(folder)
    assert size.startswith(f"{entry_bytes(folder)} bytes (")
    assert "features tiny-clip-random" in proc.stderr and "20/20" in proc.stderr  # the tqdm bar
    built = (Path(folder) / "train.npy").stat().st_mtime_ns

    overrides = [
        *SMALL,
        "vision.feature_cache=auto",
        f"paths.cache_dir={tmp_path}",
        "llm=tiny-xs",
        "visual_tokens=4",
    ]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    L.seed_everything(int(cfg.seed), verbose=False)  # as vlmscale.train: the random tower's weights match
    module, tokenizer = build_module(cfg)
    datamodule = build_datamodule(cfg, tokenizer, module.vlm)
    assert datamodule.datasets["train"].image_features.array_path.parent == Path(folder)
    assert entries(tmp_path) == [Path(folder)] and (Path(folder) / "train.npy").stat().st_mtime_ns == built


def test_a_user_error_is_one_message_and_exit_status_2(tmp_path):
    proc = cli(
        "build", *SMALL, "vision.feature_cache=on", "vision.freeze=false", f"paths.cache_dir={tmp_path}"
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "vision.feature_cache=on: the vision tower trains in this run" in proc.stderr
    assert "Traceback" not in proc.stderr and not entries(tmp_path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["llm=nope"], "Could not find 'llm/nope'"),
        (
            ["vision.feature_cache=sometimes"],
            "vision.feature_cache='sometimes': must be one of auto, on, off",
        ),
        (["vision.freeze=false"], "vision.freeze=false: the vision tower trains in this run"),
        (
            ["data=llava_pretrain", "data.splits.train.data_path=/no/such.json"],
            "data_path='/no/such.json': no such file",
        ),
    ],
    ids=["unknown-group", "bad-mode", "training-tower", "missing-data"],
)
def test_user_errors(overrides, message, tmp_path, capsys):
    base = TOWER if any(o.startswith("data=") for o in overrides) else SMALL
    assert main(["build", *base, f"paths.cache_dir={tmp_path}", *overrides]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not entries(tmp_path)


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit:
        main([])
    assert exit.value.code == 2 and "build" in capsys.readouterr().err
