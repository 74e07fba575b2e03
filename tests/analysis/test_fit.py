"""Fitting: recovery of known parameters (each law, with noise, within the bootstrap CI), options, extras."""

import numpy as np
import pytest

from analysis.dataset import FitData
from analysis.fit import FitOptions, fit_law
from analysis.laws import ADDITIVE, LAWS, PAPER, Law, get_law, register_law
from tests.analysis.conftest import FIT_STATISTICS
from tests.analysis.oracles import additive_law, grid, paper_law


def _grid(truth, params: dict, n_values, t_values, noise: float, seed: int = 1) -> FitData:
    """Noisy observations of `truth` (a plain numpy expression from tests/analysis/oracles.py, not the `Law`
    under test) at every (N, T) of the grid."""
    N, T = grid(n_values, t_values)
    y = truth(N, T, **params) + np.random.default_rng(seed).normal(0, noise, N.size)
    return FitData(N, T, y, np.arange(N.size))


T_VALUES = (1, 4, 16, 36, 64, 144, 576)


# One fixed noise draw per law, so the test is deterministic: a smoke test of recovery. Whether the intervals
# are right is a property over many draws: test_intervals_cover_the_truth below.
@pytest.mark.parametrize(
    "law,truth,true,n_values,noise_seed",
    [
        (PAPER, paper_law, {"A": 0.6, "alpha": 0.08, "beta": 0.02, "D": 0.1}, (0.5, 1, 2, 4, 8, 16), 1),
        (
            ADDITIVE,
            additive_law,
            {"E": 0.15, "A": 0.4, "alpha": 0.3, "B": 0.3, "beta": 0.35},
            (0.5, 1, 2, 4, 8, 16),
            1,
        ),
        # Raw parameter counts: the fit must not depend on the units of N.
        (PAPER, paper_law, {"A": 3.0, "alpha": 0.1, "beta": 0.03, "D": 0.05}, (1e6, 3e6, 1e7, 3e7, 1e8), 2),
    ],
)
def test_recovers_known_parameters_within_bootstrap_ci(law, truth, true, n_values, noise_seed):
    data = _grid(truth, true, n_values, T_VALUES, noise=0.002, seed=noise_seed)
    fit = fit_law(
        data, law, FitOptions(bootstrap=150, seed=3, loo=False, d_profile=False, extrapolation=False)
    )
    for name, value in true.items():
        est = fit.params[name]
        assert est.ci_low <= value <= est.ci_high, (name, value, est)
    ratio = true["alpha"] / true["beta"]
    d = fit.derived[law.ratio]
    assert d["ci_low"] <= ratio <= d["ci_high"]
    assert fit.bootstrap["n_ok"] == 150 and fit.r2 > 0.95


def test_huber_log_space_resists_outliers():
    true = {"A": 0.6, "alpha": 0.08, "beta": 0.02, "D": 0.1}
    data = _grid(paper_law, true, (0.5, 1, 2, 4, 8, 16), T_VALUES, noise=0.0005)
    data.y[[3, 17, 30]] += 0.05  # three gross outliers
    robust = fit_law(data, PAPER, FitOptions(loss="huber", log_space=True, loo=False, d_profile=False))
    plain = fit_law(data, PAPER, FitOptions(loo=False, d_profile=False))
    err_robust = abs(robust.params["alpha"].value - true["alpha"])
    err_plain = abs(plain.params["alpha"].value - true["alpha"])
    assert err_robust < 0.01 and err_robust < err_plain
    assert robust.options["loss"] == "huber" and robust.options["log_space"]


def test_exclude_outliers_names_the_points():
    true = {"A": 0.6, "alpha": 0.08, "beta": 0.02, "D": 0.1}
    data = _grid(paper_law, true, (0.5, 1, 2, 4), T_VALUES, noise=0.0005)
    data.y[5] += 0.08
    fit = fit_law(data, PAPER, FitOptions(exclude_outliers=1, loo=False, d_profile=False))
    assert [e["row"] for e in fit.excluded] == [5]
    assert fit.n_points == data.n - 1
    assert any("excluded" in w and "row 5" in w for w in fit.warnings)
    assert abs(fit.params["alpha"].value - 0.08) < 0.005


def test_statistics_and_extras_present():
    true = {"A": 0.6, "alpha": 0.08, "beta": 0.02, "D": 0.1}
    fit = fit_law(
        _grid(paper_law, true, (0.5, 1, 2, 4), T_VALUES, noise=0.002), PAPER, FitOptions(d_profile_points=5)
    )
    out = fit.to_dict()
    assert set(FIT_STATISTICS) <= set(out)
    assert out["extrapolation"]["held_out_N"] == 4 and out["extrapolation"]["n_test"] == 7
    assert out["loo_rmse"] > 0 and out["rmse"] > 0
    assert len(out["d_profile"]) == 5 and {"D", "alpha", "beta", "alpha/beta", "sse"} <= set(
        out["d_profile"][0]
    )
    p = out["params"]["alpha"]
    # Wald by definition: value -+ 1.96 standard errors (whether they cover: test_intervals_cover_the_truth)
    assert p["stderr"] > 0 and p["at_bound"] is None
    assert (p["ci_low"], p["ci_high"]) == pytest.approx(
        (p["value"] - 1.96 * p["stderr"], p["value"] + 1.96 * p["stderr"])
    )


def test_a_third_law_plugs_in():
    """Adding a law is one declarative object; no Jacobian: the fit falls back to finite differences."""
    law = Law(
        name="n_power",
        formula="y = A / N^alpha + C",
        latex=r"$y = A/N^{\alpha} + C$",
        params=("A", "alpha", "C"),
        func=lambda N, T, A, alpha, C: A / N**alpha + C + 0 * T,
        bounds=lambda N, T, y: [(0, np.inf), (0, 3), (0, float(y.min()))],
        starts=lambda N, T, y: np.array([[0.5, a, 0.0] for a in (0.05, 0.2, 0.5)]),
    )
    register_law(law)
    try:
        assert get_law("n_power") is law
        truth = lambda N, T, A, alpha, C: A / N**alpha + C  # noqa: E731  (the law's formula, written out)
        data = _grid(truth, {"A": 0.5, "alpha": 0.2, "C": 0.1}, (1, 2, 4, 8), (1, 16), noise=0.001)
        fit = fit_law(data, law, FitOptions(loo=False, d_profile=False))
        assert abs(fit.params["alpha"].value - 0.2) < 0.03
        assert fit.derived == {}
    finally:
        LAWS.pop("n_power")


def test_poor_fit_warns_not_crashes():
    """A tiny sweep of untrained models: flat error. The fit hits bounds and says so."""
    rng = np.random.default_rng(0)
    N, T = (a.ravel() for a in np.meshgrid([1e6, 3e6, 1e7], [1, 4, 16, 64], indexing="ij"))
    data = FitData(N.astype(float), T.astype(float), 0.9 + rng.normal(0, 0.01, N.size), np.arange(N.size))
    fit = fit_law(data, PAPER, FitOptions(bootstrap=10))
    assert np.isfinite(fit.sse)
    assert any("bound" in w for w in fit.warnings)


COVERAGE_TRUTH = {"A": 0.6, "alpha": 0.08, "beta": 0.02, "D": 0.1}


@pytest.mark.slow
@pytest.mark.parametrize("ci,draws,resamples", [("wald", 200, 0), ("bootstrap", 200, 50)])
def test_intervals_cover_the_truth(ci, draws, resamples):
    """95% intervals cover the known parameters in about 95% of 200 noise draws (data from the numpy
    expression, 6 x 7 grid, noise 0.002; each draw's bootstrap has its own seed).

    Accepted: 88-99% for each parameter and the ratio. Measured: Wald 90.5-95.5%, bootstrap (50 resamples,
    percentile) 91.5-93%. Both sit a little below 95% on a grid this small: Wald uses z = 1.96 with the noise
    variance estimated on 38 degrees of freedom and a nonlinear law, the percentile bootstrap is known to
    undercover at small n. The binomial sd over 200 draws is 1.5 points. The band still catches a standard
    error 25% too small (coverage ~88%) or 30% too large (~99%)."""
    N, T = grid((0.5, 1, 2, 4, 8, 16), T_VALUES)
    clean = paper_law(N, T, **COVERAGE_TRUTH)
    rng = np.random.default_rng(2024)
    names = ("A", "alpha", "beta", "D", "alpha/beta")
    truth = {**COVERAGE_TRUTH, "alpha/beta": COVERAGE_TRUTH["alpha"] / COVERAGE_TRUTH["beta"]}
    covered = dict.fromkeys(names, 0)
    for draw in range(draws):
        data = FitData(N, T, clean + rng.normal(0, 0.002, N.size), np.arange(N.size))
        opts = FitOptions(
            ci=ci, bootstrap=resamples, seed=draw, loo=False, extrapolation=False, d_profile=False
        )
        fit = fit_law(data, PAPER, opts)
        intervals = {n: (fit.params[n].ci_low, fit.params[n].ci_high) for n in names[:4]}
        intervals["alpha/beta"] = (fit.derived["alpha/beta"]["ci_low"], fit.derived["alpha/beta"]["ci_high"])
        for name, (low, high) in intervals.items():
            # an open end (None) is a bound the interval reaches: D's lower bound 0 is the only one here
            low = 0.0 if low is None and name == "D" else low
            covered[name] += low is not None and high is not None and low <= truth[name] <= high
    rates = {name: hits / draws for name, hits in covered.items()}
    assert all(0.88 <= rate <= 0.99 for rate in rates.values()), rates
