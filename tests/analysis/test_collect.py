"""Sweep folder -> table: flattening, statuses kept, corrupt files reported and skipped."""

import json

import pandas as pd
import pytest

from analysis.cli import main
from analysis.collect import collect_sweep, flatten, read_table, write_table
from analysis.errors import AnalysisInputError


def test_flatten_nests_with_dots_and_skips():
    flat = flatten(
        {"a": 1, "m": {"error/avg": 0.5, "x": {"y": 2}}, "l": [1, 2], "config": {"k": 1}}, skip=("config",)
    )
    assert flat == {"a": 1, "m.error/avg": 0.5, "m.x.y": 2, "l": "[1, 2]"}


def test_collect_keeps_failed_and_missing_and_skips_corrupt(sweep_dir):
    got = collect_sweep(sweep_dir)
    table = got.table
    assert len(table) == 15  # 16 points - 1 corrupt
    assert got.status_counts == {"done": 13, "failed": 1, "missing": 1}
    assert len(got.corrupt) == 1
    path, reason = got.corrupt[0]
    assert path.endswith("llm=tiny-m/T=16/seed=0/result.json") and "JSON" in reason
    assert {"metrics.error/avg", "error.message", "llm_params", "visual_tokens", "path"} <= set(table.columns)
    assert not any(c.startswith("config.") for c in table.columns) and "config_hash" in table.columns
    assert "error.traceback" not in table.columns
    failed = table[table.status == "failed"].iloc[0]
    assert failed["error.message"] == "boom" and pd.isna(failed["metrics.error/avg"])
    missing = table[table.status == "missing"].iloc[0]
    assert missing["llm"] == "tiny-l" and missing["visual_tokens"] == 1 and missing["seed"] == 0
    assert "1 unreadable" in got.summary()


def test_collect_with_config(sweep_dir):
    table = collect_sweep(sweep_dir, include_config=True).table
    assert "config.llm.config.hidden_size" in table.columns and "error.traceback" in table.columns


def test_collect_empty_and_not_a_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisInputError, match="empty"):
        collect_sweep(tmp_path / "empty")
    with pytest.raises(AnalysisInputError, match="does not exist"):
        collect_sweep(tmp_path / "nope")


def test_collect_other_bad_files(tmp_path):
    for name, text in {"a": "", "b": "[1, 2]", "c": json.dumps({"no_status": 1})}.items():
        run = tmp_path / "s" / f"llm={name}" / "T=1" / "seed=0"
        run.mkdir(parents=True)
        (run / "result.json").write_text(text)
    got = collect_sweep(tmp_path / "s")
    assert len(got.corrupt) == 3 and got.table.empty


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_roundtrip(sweep_dir, tmp_path, suffix):
    table = collect_sweep(sweep_dir).table
    out = write_table(table, tmp_path / f"results{suffix}")
    back, collected = read_table(out)
    assert collected is None and len(back) == len(table)
    assert list(back["status"]) == list(table["status"])


def test_table_cli(sweep_dir, tmp_path, capsys):
    out = tmp_path / "results.csv"
    assert main(["table", str(sweep_dir), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "skipped unreadable" in captured.err and "tiny-m/T=16" in captured.err
    assert len(pd.read_csv(out)) == 15
    assert main(["table", str(sweep_dir), "--out", str(tmp_path / "r.txt")]) == 2
    assert "use a .csv or .parquet" in capsys.readouterr().err


def test_analysis_never_imports_torch():
    """analysis/ reads results on machines without torch: importing every module must not pull it in."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    modules = sorted(p.stem for p in (root / "analysis").glob("*.py") if p.stem != "__main__")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module('analysis.' + m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'hydra')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
