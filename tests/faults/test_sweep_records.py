"""The sweep's bookkeeping without training: which run folders can be written, and how points that never
started join the results table as failed rows."""

import json

import pandas as pd

from vlmscale.results import write_result
from vlmscale.sweep import UNLAUNCHED_FILE, sweep_table, unwritable_reason


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
