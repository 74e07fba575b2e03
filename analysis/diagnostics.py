"""How well a fitted law describes and predicts: goodness of fit, leave-one-out, extrapolation, floor profile.

goodness_of_fit  SSE, RMSE, R^2, AIC/BIC (Gaussian log-likelihood from the SSE on y)
loo_rmse         each point predicted by a fit without it
extrapolation    the largest N predicted by a fit without it (the question a scaling law is for)
floor_profile    the exponents and SSE with the floor (D or E) held on a grid over its range
"""

from __future__ import annotations

import numpy as np

from analysis.dataset import FitData
from analysis.laws import Law
from analysis.leastsq import Problem
from analysis.uncertainty import fittable

_TINY = 1e-300


def goodness_of_fit(y: np.ndarray, pred: np.ndarray, k: int) -> dict:
    n = len(y)
    r = y - pred
    sse = float(r @ r)
    sst = float(((y - y.mean()) ** 2).sum())
    loglik_term = n * np.log(max(sse, _TINY) / n)
    return {
        "sse": sse,
        "rmse": float(np.sqrt(sse / n)),
        "r2": float(1 - sse / sst) if sst > 0 else float("nan"),
        "aic": float(loglik_term + 2 * k),
        "bic": float(loglik_term + k * np.log(n)),
    }


def loo_rmse(law: Law, data: FitData, opts, p_best: np.ndarray) -> float | None:
    errs = []
    for i in range(data.n):
        keep = np.ones(data.n, bool)
        keep[i] = False
        sub = data.subset(keep)
        if not fittable(sub, law):
            continue
        try:
            p, _ = Problem.of(law, sub, opts).local_fit(p_best)
        except ValueError:
            continue
        errs.append(float(law.predict(p, data.N[i : i + 1], data.T[i : i + 1])[0] - data.y[i]))
    return float(np.sqrt(np.mean(np.square(errs)))) if errs else None


def extrapolation(law: Law, data: FitData, opts, p_best: np.ndarray) -> dict:
    n_top = float(data.N.max())
    train_mask = data.N < n_top
    train, test = data.subset(train_mask), data.subset(~train_mask)
    if not fittable(train, law):
        return {
            "held_out_N": n_top,
            "reason": f"without N = {n_top:g} too few points or N values are left to fit ({train.n} points)",
        }
    ms = Problem.of(law, train, opts).multi_start(opts.n_starts, extra_starts=[p_best])
    err = law.predict(ms["p"], test.N, test.T) - test.y
    return {
        "held_out_N": n_top,
        "n_test": int(test.n),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
        "max_abs": float(np.max(np.abs(err))),
    }


def floor_profile(law: Law, data: FitData, opts, p_best: np.ndarray) -> list[dict]:
    """The exponents with the floor held at each value of a grid over [lower bound, 95% of its range]."""
    prob = Problem.of(law, data, opts)
    j = law.params.index(law.floor)
    lo, hi = prob.bounds[j]
    if not hi > lo:
        return []
    out, start = [], p_best.copy()
    for d in np.linspace(lo, lo + 0.95 * (hi - lo), opts.d_profile_points):
        start[j] = d
        try:
            p, obj = prob.local_fit(start, fixed={j: float(d)})
        except ValueError:
            continue
        start = p.copy()
        vals = dict(zip(law.params, map(float, p)))
        pred = law.predict(p, data.N, data.T)
        row = {law.floor: float(d), **{k: v for k, v in vals.items() if k != law.floor}}
        row.update(law.derived(vals))
        row["sse"] = float(((data.y - pred) ** 2).sum())
        row["objective"] = obj
        out.append(row)
    return out
