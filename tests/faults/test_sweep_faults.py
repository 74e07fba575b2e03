"""A sweep with bad points among good ones: every point ends with a record, the table and the summary are
written, the exit code says it failed, and the re-run after the fixes redoes exactly the failed points.

Running as root, permissions do not stop a write, so "unwritable" is a file where the run folder should be;
"Hydra's job set-up fails" is a folder where Hydra's job log file should be ("Unable to configure handler");
a corrupt checkpoint is random bytes as `last.ckpt`, with no previous one kept."""

import json
import shutil
import time

import pandas as pd
import pytest

from vlmscale.results import read_result

pytestmark = pytest.mark.slow

# Hydra's basic launcher: the points run one after another in one process, so the imports are paid once
# (the joblib launcher goes through the same sweeper; its set-up failure is the same exception).
QUICK = [
    "-m",
    "llm=tiny-xs",
    "threads=1",
    "trainer.enable_progress_bar=false",
    "eval.progress=false",
    "data.progress=false",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "eval.limit=8",
]


def test_bad_points_never_cost_the_good_ones(run_cli, tmp_path):
    sweep = tmp_path / "sweep"
    point = {t: sweep / "llm=tiny-xs" / f"T={t}" / "seed=0" for t in ("1", "4", "16", "64", "abc")}
    point["1"].parent.mkdir(parents=True)
    point["1"].write_text("a file where the run folder should be")
    (point["16"] / "train.log").mkdir(parents=True)  # Hydra's job log cannot be opened
    (point["64"] / "checkpoints").mkdir(parents=True)
    (point["64"] / "checkpoints" / "last.ckpt").write_bytes(bytes(range(256)))
    args = [*QUICK, "visual_tokens=1,4,16,64,abc", f"hydra.sweep.dir={sweep}"]

    first = run_cli(*args, check=False)
    output = first.stdout + first.stderr
    assert first.returncode == 1, output
    assert read_result(point["4"])["status"] == "done"
    setup_failure = read_result(point["16"])
    assert (
        setup_failure["status"] == "failed"
        and "Unable to configure handler" in setup_failure["error"]["message"]
    )
    assert read_result(point["abc"])["status"] == "failed"
    assert "visual_tokens='abc': must be an integer" in read_result(point["abc"])["error"]["message"]
    corrupt = read_result(point["64"])["error"]["message"]
    assert "last.ckpt is not a readable checkpoint" in corrupt and "resume=never" in corrupt
    unlaunched = json.loads((sweep / "unlaunched.json").read_text())
    assert "is not writable" in unlaunched["llm=tiny-xs/T=1/seed=0"]["error"]["message"]
    table = pd.read_csv(sweep / "results.csv").set_index("path")
    assert table["status"].to_dict() == {
        "llm=tiny-xs/T=1/seed=0": "failed",
        "llm=tiny-xs/T=4/seed=0": "done",
        "llm=tiny-xs/T=16/seed=0": "failed",
        "llm=tiny-xs/T=64/seed=0": "failed",
        "llm=tiny-xs/T=abc/seed=0": "failed",
    }
    assert "5 points" in output and "done: 1, failed: 4" in output

    point["1"].unlink()
    shutil.rmtree(point["16"] / "train.log")
    (point["64"] / "checkpoints" / "last.ckpt").unlink()  # the fix the message names
    stamps = {t: (p / "result.json").stat().st_mtime_ns for t, p in point.items() if t != "1"}
    time.sleep(0.05)
    second = run_cli(*args, check=False)
    assert second.returncode == 1  # T=abc still fails
    assert (point["4"] / "result.json").stat().st_mtime_ns == stamps["4"], "a done point must be skipped"
    assert (point["abc"] / "result.json").stat().st_mtime_ns != stamps["abc"], "a failed point is redone"
    assert [read_result(point[t])["status"] for t in ("1", "16", "64")] == ["done"] * 3
    table = pd.read_csv(sweep / "results.csv")
    assert sorted(table["status"]) == ["done", "done", "done", "done", "failed"]
