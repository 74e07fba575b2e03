"""Every bad input is one clear message naming the fix, exit code 2, no traceback."""

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main


def _csv(tmp_path, rows, name="data.csv"):
    path = tmp_path / name
    pd.DataFrame(rows, columns=["llm_params_b", "visual_tokens", "error"]).to_csv(path, index=False)
    return path


def _grid_rows(n_values=(0.5, 1.8, 4), t_values=(1, 16, 64)):
    return [(n, t, 0.6 / (n**0.07 * t**0.015)) for n in n_values for t in t_values]


def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _fit(path, tmp_path, *extra):
    return ["fit", str(path), "--out", str(tmp_path / "out"), "--no-plots", *extra]


@pytest.mark.parametrize(
    "rows,extra,expect",
    [
        (_grid_rows(), ["--y-col", "acc"], ["column 'acc'", "--y-col"]),
        (_grid_rows(), ["--n-col", "params"], ["column 'params'", "--n-col"]),
        (_grid_rows((0.5, 1.8), (1, 16)), [], ["4 points", "at least 5", "add grid points"]),
        (_grid_rows()[:-1] + [(4, 64, np.nan)], [], ["NaN/inf", "rows [8]", "fix or drop"]),
        (_grid_rows()[:-1] + [(4, 64, np.inf)], [], ["NaN/inf", "error"]),
        (_grid_rows()[:-1] + [(4, 64, -0.1)], [], ["negative error", "--accuracy"]),
        (
            _grid_rows((1.8,), (1, 4, 16, 36, 64)),
            [],
            ["only one value of 'llm_params_b'", "add runs with other LLM sizes"],
        ),
        (
            _grid_rows((0.5, 1.8, 4, 7, 14), (16,)),
            [],
            ["only one value of 'visual_tokens'", "visual-token counts"],
        ),
        (_grid_rows()[:-1] + [(0, 64, 0.5)], [], ["values <= 0", "must be positive"]),
        (_grid_rows(), ["--log-space", "--y-col", "visual_tokens", "--accuracy"], ["negative error"]),
        (_grid_rows(), ["--exclude-outliers", "6"], ["--exclude-outliers 6", "exclude fewer"]),
        (_grid_rows(), ["--huber-delta", "0", "--loss", "huber"], ["--huber-delta must be > 0"]),
    ],
)
def test_bad_table_inputs(tmp_path, capsys, rows, extra, expect):
    code, err = _run(capsys, _fit(_csv(tmp_path, rows), tmp_path, *extra))
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    for text in expect:
        assert text in err, (text, err)


def test_accuracy_out_of_range(tmp_path, capsys):
    rows = [(n, t, 1.3) for n in (0.5, 1.8, 4) for t in (1, 16, 64)]
    code, err = _run(capsys, _fit(_csv(tmp_path, rows), tmp_path, "--accuracy"))
    assert code == 2 and "does not look like an accuracy" in err


def test_negative_accuracy_is_refused(tmp_path, capsys):
    rows = _grid_rows()[:-1] + [(4, 64, -0.2)]
    code, err = _run(capsys, _fit(_csv(tmp_path, rows), tmp_path, "--accuracy"))
    assert code == 2 and "--accuracy: column 'error' has negative values in rows [8]" in err


def test_empty_sweep_folder(tmp_path, capsys):
    (tmp_path / "sweep").mkdir()
    for argv in (_fit(tmp_path / "sweep", tmp_path), ["table", str(tmp_path / "sweep")]):
        code, err = _run(capsys, argv)
        assert code == 2 and "empty" in err and "Run the sweep first" in err


def test_sweep_without_done_points(tmp_path, capsys):
    from tests.analysis.conftest import LLMS, TOKENS, write_sweep

    failed = [(llm, t) for llm in LLMS for t in TOKENS]
    write_sweep(tmp_path / "sweep", lambda n, t: 0.5, failed=failed)
    code, err = _run(capsys, _fit(tmp_path / "sweep", tmp_path))
    assert code == 2 and "no rows with status 'done' (16 failed)" in err


@pytest.mark.parametrize(
    "make,expect",
    [
        (lambda p: p / "nope.csv", "does not exist"),
        (lambda p: (p / "data.txt").write_text("a,b\n1,2\n") and p / "data.txt", "unknown table format"),
        (
            lambda p: (p / "empty.csv").write_text("llm_params_b,visual_tokens,error\n") and p / "empty.csv",
            "no rows",
        ),
    ],
)
def test_bad_files(tmp_path, capsys, make, expect):
    code, err = _run(capsys, _fit(make(tmp_path), tmp_path))
    assert code == 2 and expect in err


def test_unknown_law_and_bad_frontier_inputs(tmp_path, capsys):
    path = _csv(tmp_path, _grid_rows())
    code, err = _run(capsys, ["compare", str(path), "--laws", "paper,nope"])
    assert code == 2 and "unknown law 'nope'" in err
    code, err = _run(capsys, ["frontier", str(tmp_path / "missing.json")])
    assert code == 2 and "give the fit.json" in err
    (tmp_path / "bad.json").write_text("{not json")
    code, err = _run(capsys, ["frontier", str(tmp_path / "bad.json")])
    assert code == 2 and "not valid JSON" in err
    (tmp_path / "other.json").write_text("{}")
    code, err = _run(capsys, ["frontier", str(tmp_path / "other.json")])
    assert code == 2 and "re-run the fit" in err


def test_bad_frontier_ranges(tmp_path, capsys):
    path = _csv(tmp_path, _grid_rows())
    assert main(["fit", str(path), "--out", str(tmp_path / "f"), "--no-plots"]) == 0
    capsys.readouterr()
    fit_json = str(tmp_path / "f" / "fit.json")
    code, err = _run(capsys, ["frontier", fit_json, "--n-range", "5", "1"])
    assert code == 2 and "--n-range" in err
    code, err = _run(capsys, ["frontier", fit_json, "--budgets", "-1"])
    assert code == 2 and "--budgets must be positive" in err
    code, err = _run(capsys, ["frontier", fit_json, "--text-tokens", "-3"])
    assert code == 2 and "--text-tokens" in err


def test_sweep_nan_metric_names_the_run_folder(sweep_dir, tmp_path, capsys):
    import json

    path = sweep_dir / "llm=tiny-xs" / "T=4" / "seed=0" / "result.json"
    record = json.loads(path.read_text())
    del record["metrics"]["error/avg"]
    path.write_text(json.dumps(record))
    code, err = _run(capsys, _fit(sweep_dir, tmp_path))
    assert code == 2 and "NaN/inf" in err and "llm=tiny-xs/T=4/seed=0" in err
