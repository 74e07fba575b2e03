"""Per-category fits (`python -m analysis demo`): the paper's split, seeds, a flat category, the split figure."""

import json

import numpy as np
import pytest

from analysis.cli import main
from analysis.dataset import FitData, average_seeds
from tests.analysis.conftest import paper_error, write_sweep

# Reasoning moves ~4x faster with N than with T; OCR the reverse (the paper's two halves).
REASONING = {"A": 2.0, "alpha": 0.16, "beta": 0.04, "D": 0.05}
OCR = {"A": 2.0, "alpha": 0.04, "beta": 0.16, "D": 0.05}


def _two_seed_sweep(root, ocr_flat: bool = False):
    for seed in (0, 1):
        rng = np.random.default_rng(seed)

        def errors(n, T, rng=rng):
            r = paper_error(n, T, **REASONING, noise=0.002, rng=rng)
            o = 0.97 + rng.normal(0, 0.002) if ocr_flat else paper_error(n, T, **OCR, noise=0.002, rng=rng)
            return r, o

        write_sweep(root, errors, seed=seed)
    return root


def test_average_seeds_means_each_point():
    data = FitData(
        np.array([1.0, 1.0, 2.0, 2.0, 1.0]),
        np.array([4.0, 4.0, 4.0, 4.0, 8.0]),
        np.array([0.2, 0.4, 0.1, 0.3, 0.9]),
        np.arange(5),
    )
    avg = average_seeds(data)
    assert avg.n == 3
    got = {(n, t): y for n, t, y in zip(avg.N, avg.T, avg.y)}
    assert got == pytest.approx({(1.0, 4.0): 0.3, (1.0, 8.0): 0.9, (2.0, 4.0): 0.2})
    assert "2 seeds" in avg.rows[0]


def test_demo_fits_each_category_and_shows_the_split(tmp_path, capsys):
    sweep = _two_seed_sweep(tmp_path / "sweep")
    out = tmp_path / "fit"
    argv = ["demo", str(sweep), "--out", str(out), "--bootstrap", "60", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    ratios = {}
    for cat in ("reasoning", "ocr"):
        fit = json.loads((out / cat / "fit.json").read_text())
        assert fit["data"]["y_col"] == f"metrics.error/{cat}" and fit["category"] == cat
        assert fit["n_points"] == 16 and fit["n_runs"] == 32 and fit["seeds"] == "mean"
        assert fit["ci_method"] == "bootstrap" and fit["bootstrap"]["n_ok"] == 60
        ratios[cat] = fit["derived"]["alpha/beta"]
        assert (out / cat / "scaling.png").stat().st_size > 1000
    assert ratios["reasoning"]["ci_low"] > 1 and ratios["ocr"]["ci_high"] < 1
    assert ratios["reasoning"]["ci_low"] <= 4.0 <= ratios["reasoning"]["ci_high"]
    assert ratios["ocr"]["ci_low"] <= 0.25 <= ratios["ocr"]["ci_high"]
    for ext in ("png", "pdf"):
        assert (out / f"split.{ext}").stat().st_size > 1000
    summary = printed[printed.index("per-category fits") :]
    assert "reasoning" in summary and "ocr" in summary and "alpha/beta" in summary and "T* " in summary
    # closed form T* = beta Q / (alpha - beta) at Q = 50 for reasoning (~ 0.04 * 50 / 0.12)
    t_star = json.loads((out / "reasoning" / "fit.json").read_text())["T_closed_form"]
    assert 10 < t_star < 25


def test_flat_category_warns_not_crashes(tmp_path, capsys):
    sweep = _two_seed_sweep(tmp_path / "sweep", ocr_flat=True)
    argv = [
        "demo",
        str(sweep),
        "--out",
        str(tmp_path / "fit"),
        "--bootstrap",
        "20",
        "--no-progress",
        "--no-plots",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "[ocr]" in captured.err and "hardly moves" in captured.err
    assert "WARNING" in captured.out[captured.out.index("per-category fits") :]
    fit = json.loads((tmp_path / "fit" / "ocr" / "fit.json").read_text())
    assert any("hardly moves" in w for w in fit["warnings"])
    assert not any(
        "hardly moves" in w
        for w in json.loads((tmp_path / "fit" / "reasoning" / "fit.json").read_text())["warnings"]
    )


def test_demo_all_rows_and_unknown_category(tmp_path, capsys):
    sweep = _two_seed_sweep(tmp_path / "sweep")
    argv = ["demo", str(sweep), "--out", str(tmp_path / "fit"), "--seeds", "all", "--no-plots"]
    assert main(argv + ["--categories", "reasoning"]) == 0
    assert json.loads((tmp_path / "fit" / "reasoning" / "fit.json").read_text())["n_points"] == 32
    capsys.readouterr()
    assert main(argv + ["--categories", "reasoning,charts"]) == 2
    err = capsys.readouterr().err
    assert "charts" in err and "metrics.error/charts" in err and "ocr" in err
