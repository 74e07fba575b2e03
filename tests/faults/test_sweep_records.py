"""The sweep's bookkeeping without training: which run folders can be written, how points that never
started join the results table as failed rows, and the summary's results.csv and exit status with a failed
point (a stubbed launcher; tests/faults/test_sweep_faults.py runs the real sweep, slow)."""

import json
import logging
import time

import pandas as pd
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from vlmscale.results import read_result, write_result
from vlmscale.sweep import UNLAUNCHED_FILE, PointByPointSweep, SweepSummary, sweep_table, unwritable_reason


def test_writable_folder_is_created_and_left_clean(tmp_path):
    folder = tmp_path / "llm=a" / "T=4" / "seed=0"
    assert unwritable_reason(folder) is None
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_folder_blocked_by_a_file_is_named_with_the_fix(tmp_path):
    (tmp_path / "llm=a").write_text("in the way")
    reason = unwritable_reason(tmp_path / "llm=a" / "T=4" / "seed=0")
    assert reason is not None and str(tmp_path / "llm=a") in reason
    assert "is not writable" in reason and "fix its permissions or remove what is in the way" in reason


def _unlaunched(sweep, entries):
    record = {
        rel: {"overrides": rel.split()[1:], "error": {"type": "RuntimeError", "message": msg}}
        for rel, msg in entries
    }
    (sweep / UNLAUNCHED_FILE).write_text(json.dumps(record))


def test_unlaunched_points_become_failed_rows(tmp_path):
    write_result(tmp_path / "llm=a" / "T=4" / "seed=0", {"status": "done", "llm": "a", "visual_tokens": 4})
    (tmp_path / "llm=a" / "T=1" / "seed=0").mkdir(parents=True)  # no result.json: would be 'missing'
    _unlaunched(
        tmp_path, [("llm=a/T=1/seed=0", "not writable"), ("#3 llm=nope visual_tokens=4", "no such config")]
    )
    table, corrupt = sweep_table(tmp_path)
    assert corrupt == []
    rows = {row["path"]: row for _, row in table.iterrows()}
    assert set(rows) == {"llm=a/T=4/seed=0", "llm=a/T=1/seed=0", "#3 llm=nope visual_tokens=4"}
    assert rows["llm=a/T=4/seed=0"]["status"] == "done"
    assert rows["llm=a/T=1/seed=0"]["status"] == "failed" and rows["llm=a/T=1/seed=0"]["visual_tokens"] == 1
    assert rows["llm=a/T=1/seed=0"]["error.message"] == "not writable"
    unknown = rows["#3 llm=nope visual_tokens=4"]
    assert unknown["status"] == "failed" and unknown["llm"] == "nope" and unknown["visual_tokens"] == 4


def test_table_when_no_point_started(tmp_path):
    _unlaunched(tmp_path, [("llm=a/T=1/seed=0", "not writable")])
    table, _ = sweep_table(tmp_path)
    assert list(table["status"]) == ["failed"] and isinstance(table, pd.DataFrame)


def test_a_point_fixed_since_is_no_longer_failed(tmp_path):
    write_result(tmp_path / "llm=a" / "T=1" / "seed=0", {"status": "done", "llm": "a", "visual_tokens": 1})
    _unlaunched(tmp_path, [])  # the sweeper rewrites the file on every run
    table, _ = sweep_table(tmp_path)
    assert list(table["status"]) == ["done"]


class StubLauncher:
    """Hydra's launcher interface; every job ends FAILED without writing a result (a job that died inside
    Hydra's own code, or was killed by the scheduler before train.py could record anything)."""

    def __init__(self, error: BaseException) -> None:
        self.error, self.launched = error, []

    def launch(self, job_overrides, initial_job_idx):
        self.launched += [list(o) for o in job_overrides]
        return [
            JobReturn(overrides=o, status=JobStatus.FAILED, _return_value=self.error) for o in job_overrides
        ]


def stub_sweeper(sweep_dir, launcher) -> PointByPointSweep:
    sweeper = PointByPointSweep()
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    sweeper.launcher, sweeper._started, sweeper._unlaunched = launcher, time.time(), {}
    return sweeper


def test_sweep_summary_writes_results_csv_with_the_failed_point_and_exits_1(tmp_path, caplog):
    """A failed job's point gets a failed result.json from the sweeper, results.csv lists it next to the done
    one with its error, and the summary names it and ends the sweep with exit status 1."""
    caplog.set_level(logging.INFO, logger="vlmscale.sweep")
    done = tmp_path / "llm=tiny-xs" / "T=1" / "seed=0"
    write_result(done, {"status": "done", "llm": "tiny-xs", "visual_tokens": 1, "seed": 0})
    failed = tmp_path / "llm=tiny-xs" / "T=4" / "seed=0"
    failed.mkdir(parents=True)
    launcher = StubLauncher(RuntimeError("CUDA out of memory at step 3"))
    sweeper = stub_sweeper(tmp_path, launcher)
    sweeper._launch(
        [(1, ["llm=tiny-xs", "visual_tokens=4", "seed=0"], failed, True, False)]
    )  # ready, not done
    assert launcher.launched == [["llm=tiny-xs", "visual_tokens=4", "seed=0"]]
    record = read_result(failed)
    assert record["status"] == "failed" and record["error"]["message"] == "CUDA out of memory at step 3"
    assert (record["llm"], record["visual_tokens"], record["seed"]) == ("tiny-xs", 4, 0)

    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    with pytest.raises(SystemExit, match="^1$"):
        SweepSummary().on_multirun_end(config)
    table = pd.read_csv(tmp_path / "results.csv").set_index("path")
    assert table["status"].to_dict() == {"llm=tiny-xs/T=1/seed=0": "done", "llm=tiny-xs/T=4/seed=0": "failed"}
    assert table.loc["llm=tiny-xs/T=4/seed=0", "error.message"] == "CUDA out of memory at step 3"
    assert "sweep: 2 points" in caplog.text and "done: 1, failed: 1" in caplog.text
    assert "point llm=tiny-xs/T=4/seed=0 ended failed: CUDA out of memory at step 3" in caplog.text
    assert "re-run the same command to redo only these points" in caplog.text


def test_sweep_summary_of_an_all_done_sweep_exits_normally(tmp_path):
    write_result(tmp_path / "llm=a" / "T=1" / "seed=0", {"status": "done", "llm": "a", "visual_tokens": 1})
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert list(pd.read_csv(tmp_path / "results.csv")["status"]) == ["done"]
