"""The fit on the paper's measured grid (sweeps/reference/li2024_reasoning.csv), checked against sources other
than the code under test: an independent least-squares solver (scipy curve_fit from 27 starts, the law as a
numpy expression: tests/analysis/oracles.py), the paper's reported exponents, and the F-test definition of a
profile interval recomputed by that solver."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.collect import read_table
from analysis.dataset import prepare
from analysis.fit import FitOptions, fit_law
from analysis.frontier import FrontierSpec
from analysis.laws import PAPER
from tests.analysis.oracles import (
    PAPER_ALPHA,
    PAPER_BETA,
    REFERENCE,
    f_quantile,
    f_statistic,
    reference_optimum,
    reference_sse_with,
    reference_sse_with_ratio,
)


def reference_data():
    table, _ = read_table(REFERENCE)
    return prepare(table, y_col="accuracy", accuracy=True)


@pytest.fixture(scope="module")
def ref_fit():
    return fit_law(
        reference_data(), PAPER, FitOptions(bootstrap=40, seed=0, d_profile_points=5), text_tokens=50
    )


def test_reference_table_is_the_authors_grid():
    table = pd.read_csv(REFERENCE)
    assert list(table.columns) == ["llm_params_b", "visual_tokens", "accuracy"]
    assert len(table) == 28 and set(table.llm_params_b) == {0.5, 1.8, 4, 7}
    assert set(table.visual_tokens) == {1, 4, 16, 36, 64, 144, 576}
    # one value read off the authors' scaling_law_code/values.py (see sweeps/reference/README.md)
    assert table.loc[(table.llm_params_b == 7) & (table.visual_tokens == 576), "accuracy"].item() == 0.5354


def test_reference_fit_is_the_independent_least_squares_optimum(ref_fit):
    best = reference_optimum()
    v = ref_fit.values()
    # the same minimum, and not a worse one: the SSE agrees to 1e-7 and is never above the oracle's
    assert ref_fit.sse == pytest.approx(best["sse"], rel=1e-7)
    assert ref_fit.sse <= best["sse"] * (1 + 1e-9)
    # the valley is flat along alpha ~ beta, so the parameters agree less tightly than the SSE does
    for name in ("A", "alpha", "beta"):
        assert v[name] == pytest.approx(best[name], rel=1e-4), name
    assert v["alpha"] / v["beta"] == pytest.approx(best["alpha"] / best["beta"], rel=1e-4)
    # the oracle's floor also ends on its lower bound: D = 0 is the data's, not the code's, choice
    assert best["D"] < 1e-9 and v["D"] == 0.0 and ref_fit.params["D"].at_bound == "lower"
    assert any(w.startswith("parameter D") and "lower bound" in w for w in ref_fit.warnings)
    assert ref_fit.fit_time_s < 1.0


def test_reference_fit_agrees_with_the_papers_reported_exponents(ref_fit):
    """The paper reports alpha 0.077 and beta 0.015 from a grid search, not a least-squares optimum.

    Tolerances: beta within 0.001 (two significant figures round by up to 0.0005, and the search's grid);
    alpha within 0.008 (10%), because the least-squares optimum on the same data sits lower (0.0709). That
    gap is not an error: the paper's point, with A and D refitted, lies inside the 95% joint confidence region
    of (alpha, beta) by the F test, and its SSE is above the optimum's, as a grid point's must be."""
    v = ref_fit.values()
    assert abs(v["beta"] - PAPER_BETA) <= 0.001
    assert abs(v["alpha"] - PAPER_ALPHA) <= 0.008
    best = reference_optimum()
    sse_paper = reference_sse_with({"alpha": PAPER_ALPHA, "beta": PAPER_BETA})
    assert ref_fit.sse < sse_paper
    F = f_statistic(sse_paper, best["sse"], n_fixed=2, n_points=best["n"], n_free=4)
    assert F < f_quantile(2, best["n"] - 4)


def test_reference_frontier(ref_fit):
    best = reference_optimum()
    fit_json = json.loads(json.dumps(ref_fit.to_dict()))
    spec = FrontierSpec.from_fit(fit_json, text_tokens=50)
    t_star = spec.closed_form_t()
    # the paper's closed form beta Q / (alpha - beta) at the oracle's exponents
    assert t_star == pytest.approx(best["beta"] * 50 / (best["alpha"] - best["beta"]), rel=1e-3)
    table = spec.frontier()
    assert len(table) == 8 and (table.binding != "infeasible").all()
    assert np.allclose(table.T_opt, t_star, rtol=1e-4)
    flops = 2 * table.N_opt * (50 + table.T_opt)
    assert np.allclose(flops, table.budget)
    spec0 = FrontierSpec.from_fit(fit_json, text_tokens=0)
    assert np.allclose(spec0.frontier().T_opt, 1.0)
    # An explicit budget too small to reach: flagged, not an exception.
    assert spec.frontier([1.0]).binding.item() == "infeasible"


def test_reference_profile_intervals_end_where_the_f_test_reaches_95_percent():
    """--ci profile: each endpoint is where the F test of the fit refitted with that value held against the
    best fit reaches its 95% quantile. Recomputed at every endpoint by the independent solver, with D held on
    its bound as the code documents (intervals conditional on a parameter on its bound)."""
    fit = fit_law(
        reference_data(), PAPER, FitOptions(ci="profile", loo=False, extrapolation=False, d_profile=False)
    )
    wald = fit_law(reference_data(), PAPER, FitOptions(loo=False, extrapolation=False, d_profile=False))
    best = reference_optimum()
    n, free = best["n"], 3  # A, alpha, beta; D on its bound
    target = f_quantile(1, n - free)
    assert fit.ci_method == "profile" and fit.sse == pytest.approx(wald.sse)
    for name in ("A", "alpha", "beta"):
        p = fit.params[name]
        for end in (p.ci_low, p.ci_high):
            sse = reference_sse_with({name: end, "D": 0.0})
            assert f_statistic(sse, best["sse"], 1, n, free) == pytest.approx(target, rel=0.01), (name, end)
        # near-linear here: the profile interval's width is within 25% of the Wald one's
        w = wald.params[name]
        assert (p.ci_high - p.ci_low) == pytest.approx(w.ci_high - w.ci_low, rel=0.25)
    assert fit.params["D"].ci_low is None and fit.params["D"].at_bound == "lower"
    ratio = fit.derived["alpha/beta"]
    for end in (ratio["ci_low"], ratio["ci_high"]):
        sse = reference_sse_with_ratio(end, D=0.0)
        assert f_statistic(sse, best["sse"], 1, n, free) == pytest.approx(target, rel=0.01), end
    # The profile of a ratio is skewed (longer towards large ratios), unlike the symmetric delta method.
    assert ratio["ci_high"] - ratio["value"] > ratio["value"] - ratio["ci_low"]
    assert "[[Variables]]" in fit.lmfit_report and "alpha:" in fit.lmfit_report
