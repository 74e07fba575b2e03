"""Acceptance numbers on the paper's measured grid (sweeps/reference/li2024_reasoning.csv)."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.collect import read_table
from analysis.dataset import prepare
from analysis.fit import FitOptions, fit_law
from analysis.frontier import FrontierSpec
from analysis.laws import PAPER


@pytest.fixture(scope="module")
def ref_fit():
    from tests.analysis.conftest import REFERENCE

    table, _ = read_table(REFERENCE)
    data = prepare(table, y_col="accuracy", accuracy=True)
    return fit_law(data, PAPER, FitOptions(bootstrap=40, seed=0, d_profile_points=5), text_tokens=50)


def test_reference_table_shape():
    from tests.analysis.conftest import REFERENCE

    table = pd.read_csv(REFERENCE)
    assert list(table.columns) == ["llm_params_b", "visual_tokens", "accuracy"]
    assert len(table) == 28 and set(table.llm_params_b) == {0.5, 1.8, 4, 7}
    assert table.loc[(table.llm_params_b == 7) & (table.visual_tokens == 576), "accuracy"].item() == 0.5354


def test_reference_fit_acceptance(ref_fit):
    v = ref_fit.values()
    assert ref_fit.sse <= 3.80e-4  # the reference grid's best point: 3.96e-4
    assert 4.6 <= v["alpha"] / v["beta"] <= 4.8
    assert ref_fit.params["D"].at_bound == "lower" and v["D"] == 0.0
    assert any(w.startswith("parameter D") and "lower bound" in w for w in ref_fit.warnings)
    assert ref_fit.fit_time_s < 1.0
    assert abs(v["alpha"] - 0.0709) < 0.001 and abs(v["beta"] - 0.0151) < 0.0005
    ci = ref_fit.derived["alpha/beta"]
    assert ci["ci_low"] < 4.697 < ci["ci_high"]


def test_reference_frontier(ref_fit):
    fit_json = json.loads(json.dumps(ref_fit.to_dict()))
    spec = FrontierSpec.from_fit(fit_json, text_tokens=50)
    t_star = spec.closed_form_t()
    assert 13 < t_star < 14
    table = spec.frontier()
    assert len(table) == 8 and (table.binding != "infeasible").all()
    assert np.allclose(table.T_opt, t_star, rtol=1e-4)
    flops = 2 * table.N_opt * (50 + table.T_opt)
    assert np.allclose(flops, table.budget)
    spec0 = FrontierSpec.from_fit(fit_json, text_tokens=0)
    assert np.allclose(spec0.frontier().T_opt, 1.0)
    # An explicit budget too small to reach: flagged, not an exception.
    assert spec.frontier([1.0]).binding.item() == "infeasible"


def test_reference_profile_intervals():
    """--ci profile: lmfit conf_interval on the free parameters and on the ratio (D held on its bound)."""
    from tests.analysis.conftest import REFERENCE

    table, _ = read_table(REFERENCE)
    data = prepare(table, y_col="accuracy", accuracy=True)
    opts = FitOptions(ci="profile", loo=False, extrapolation=False, d_profile=False)
    fit = fit_law(data, PAPER, opts)
    wald = fit_law(data, PAPER, FitOptions(loo=False, extrapolation=False, d_profile=False))
    assert fit.ci_method == "profile" and fit.sse == pytest.approx(wald.sse)
    for name in ("A", "alpha", "beta"):
        p, w = fit.params[name], wald.params[name]
        assert p.ci_low < p.value < p.ci_high
        # Near-linear here: the profile interval's width is within 25% of the Wald one's.
        assert (p.ci_high - p.ci_low) == pytest.approx(w.ci_high - w.ci_low, rel=0.25)
    assert fit.params["D"].ci_low is None and fit.params["D"].at_bound == "lower"
    ratio = fit.derived["alpha/beta"]
    assert ratio["ci_low"] < 4.697 < ratio["ci_high"]
    # The profile of a ratio is skewed (longer towards large ratios), unlike the symmetric delta method.
    assert ratio["ci_high"] - ratio["value"] > ratio["value"] - ratio["ci_low"]
    assert "[[Variables]]" in fit.lmfit_report and "alpha:" in fit.lmfit_report
