"""End to end: the Makefile's demo commands on a sweep folder, the reference fit, frontier, compare, --help."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from tests.analysis.conftest import FIT_STATISTICS
from tests.analysis.oracles import reference_optimum

ROOT = Path(__file__).resolve().parents[2]


def _py(*args, cwd=ROOT):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_demo_commands_on_a_sweep_folder(sweep_dir, tmp_path):
    """The table and single-law fit commands on a sweep folder with failed, corrupt and missing points."""
    res = _py("table", str(sweep_dir), "--out", str(tmp_path / "results.csv"))
    assert res.returncode == 0, res.stderr
    assert "15 points" in res.stdout and "skipped unreadable" in res.stderr
    table = pd.read_csv(tmp_path / "results.csv")
    assert set(table.status) == {"done", "failed", "missing"}
    res = _py("fit", str(sweep_dir), "--y-col", "metrics.error/avg", "--out", str(tmp_path / "fit"))
    assert res.returncode == 0, res.stderr
    assert "left out rows whose status is not done: 1 failed, 1 missing" in res.stderr
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert fit["n_points"] == 13 and fit["data"]["n_col"] == "llm_params"
    assert abs(fit["params"]["alpha"]["value"] - 0.12) < 0.03
    for stem in ("scaling", "residuals", "isoflop", "d_profile"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "fit" / f"{stem}.{ext}").stat().st_size > 1000


def test_makefile_demo_fit_line(sweep_dir, tmp_path):
    """The Makefile's demo fit line, read from the Makefile, on a sweep folder at $(DEMO_DIR)/sweep."""
    line = next(ln.strip() for ln in (ROOT / "Makefile").read_text().splitlines() if "-m analysis" in ln)
    argv = line.replace("$(DEMO_DIR)", str(tmp_path)).split()
    assert argv[:3] == ["$(PY)", "-m", "analysis"]
    res = _py(*argv[3:])
    assert res.returncode == 0, res.stderr
    for cat in ("reasoning", "ocr"):
        fit = json.loads((tmp_path / "fit" / cat / "fit.json").read_text())
        assert fit["bootstrap"]["n_ok"] > 0 and fit["derived"]["alpha/beta"]["ci_low"] is not None
    assert (tmp_path / "fit" / "split.png").stat().st_size > 1000
    assert "per-category fits" in res.stdout


def _on_reference(command: str, reference_csv, *args: str) -> list[str]:
    """Arguments running ``command`` on the reference grid, whose y column is an accuracy."""
    return [command, str(reference_csv), "--y-col", "accuracy", "--accuracy", *args]


def test_reference_fit_frontier_compare(reference_csv, tmp_path, capsys):
    out = tmp_path / "ref"
    argv = _on_reference("fit", reference_csv, "--bootstrap", "20", "--out", str(out))
    assert main(argv + ["--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "warning: parameter D = 0 sits on its lower bound" in captured.err
    # the printed SSE is the independent least-squares optimum's (tests/analysis/oracles.py), 4 digits
    assert "alpha/beta" in captured.out and f"SSE {reference_optimum()['sse']:.4g}" in captured.out
    assert "[[Variables]]" in (out / "fit_report.txt").read_text()
    fit = json.loads((out / "fit.json").read_text())
    assert set(FIT_STATISTICS) | {"law", "params"} <= set(fit)
    assert fit["params"]["D"]["at_bound"] == "lower" and fit["params"]["alpha"]["ci_low"] is not None
    best = reference_optimum()
    t_star = best["beta"] * 50 / (best["alpha"] - best["beta"])  # beta Q / (alpha - beta) at Q = 50
    assert fit["T_closed_form"] == pytest.approx(t_star, rel=1e-3)

    assert (
        main(
            [
                "frontier",
                str(out / "fit.json"),
                "--text-tokens",
                "50",
                "--budgets",
                "100",
                "1000",
                "--no-plots",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"T* = beta Q / (alpha - beta) = {t_star:.1f}" in printed
    front = pd.read_csv(out / "frontier_Q50.csv")
    assert list(front.budget) == [100, 1000] and np.allclose(front.T_opt, t_star, rtol=1e-3)
    assert main(["frontier", str(out / "fit.json"), "--text-tokens", "0", "--out", str(tmp_path / "q0")]) == 0
    capsys.readouterr()
    assert (pd.read_csv(tmp_path / "q0" / "frontier_Q0.csv").T_opt.round(6) == 1).all()
    assert (tmp_path / "q0" / "isoflop_Q0.png").exists()

    assert main(_on_reference("compare", reference_csv, "--out", str(tmp_path / "cmp"))) == 0
    printed = capsys.readouterr().out
    assert "paper" in printed and "additive" in printed
    ranked = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert set(ranked.law) == {"paper", "additive"} and list(ranked["rank"]) == [1, 2]
    assert ranked.aic.is_monotonic_increasing
    assert (tmp_path / "cmp" / "compare.png").exists() and (tmp_path / "cmp" / "compare.md").exists()


def test_huber_log_space_cli(reference_csv, tmp_path, capsys):
    argv = _on_reference("fit", reference_csv, "--loss", "huber", "--huber-delta", "1e-3")
    assert main(argv + ["--log-space", "--law", "additive", "--no-plots", "--out", str(tmp_path)]) == 0
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["law"] == "additive" and fit["options"]["loss"] == "huber" and fit["options"]["log_space"]


def test_accuracy_hint(reference_csv, tmp_path, capsys):
    main(["fit", str(reference_csv), "--y-col", "accuracy", "--no-plots", "--out", str(tmp_path)])
    assert "looks like an accuracy: add --accuracy" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [[], ["table"], ["fit"], ["demo"], ["frontier"], ["compare"]])
def test_help_is_complete(cmd, capsys):
    with pytest.raises(SystemExit, match="^0$") as exc:  # argparse's --help exits 0
        main([*cmd, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    expected = {
        (): ["table", "fit", "demo", "frontier", "compare", "examples"],
        ("table",): ["--out", "--with-config", "missing"],
        ("fit",): [
            "--n-col",
            "--t-col",
            "--y-col",
            "--accuracy",
            "--law",
            "--loss",
            "--huber-delta",
            "--log-space",
            "--bootstrap",
            "--exclude-outliers",
            "--ci",
            "profile",
            "--text-tokens",
            "--out",
        ],
        ("demo",): ["--categories", "--seeds", "--bootstrap", "--ci", "--out", "split"],
        ("frontier",): [
            "--text-tokens",
            "--budgets",
            "--n-range",
            "--t-range",
            "closed form",
            "--cost",
            "--tower-flops",
            "--compressor-flops",
            "--per-token-flops",
            "--query-tokens",
        ],
        ("compare",): ["--laws", "--rank-by", "--bootstrap"],
    }[tuple(cmd)]
    for word in expected:
        assert word in text, word
