"""How sure a fit is: bound flags, standard errors, and 95% intervals by Wald, bootstrap or likelihood profile.

wald       Gauss-Newton covariance s^2 (J^T J)^-1 over the parameters not on a bound (the others held),
           intervals value +- 1.96 stderr, the exponent ratio's by the delta method.
bootstrap  K resamples of the points with replacement, each refitted from the best fit; percentile intervals.
profile    lmfit's `conf_interval`: for each free parameter, the values where the F-test against the best fit
           reaches 95%, every other free parameter refitted. The exponent ratio gets its own profile by
           refitting with the ratio as a parameter (the exponent of T tied to it by an lmfit expression).
Parameters on a bound are held there in every method (the intervals are conditional on them).
"""

from __future__ import annotations

import warnings

import lmfit
import numpy as np

from analysis.dataset import FitData
from analysis.laws import Law
from analysis.leastsq import Problem

CI_METHODS = ("wald", "bootstrap", "profile")
LEVEL = 0.95
_Z = 1.96
Interval = tuple[float | None, float | None]


def at_bound(value: float, lo: float, hi: float) -> str | None:
    """ "lower" / "upper" when `value` sits on that bound (relative tolerance 1e-6 of the range), else None."""
    span = hi - lo if np.isfinite(hi - lo) else max(1.0, abs(value))
    tol = 1e-6 * max(span, 1e-12)
    if value - lo <= tol:
        return "lower"
    if np.isfinite(hi) and hi - value <= tol:
        return "upper"
    return None


def covariance(prob: Problem, p: np.ndarray, free: np.ndarray) -> np.ndarray | None:
    """Gauss-Newton covariance over the free parameters (NaN rows/cols for the others); None if singular."""
    idx = np.flatnonzero(free)
    n, k = len(prob.y), len(idx)
    if k == 0 or n <= k:
        return None
    J = np.empty((n, k))
    for col, i in enumerate(idx):
        h = 1e-6 * max(abs(p[i]), 1e-4)
        up, down = p.copy(), p.copy()
        up[i] += h
        down[i] -= h
        J[:, col] = (prob.residual_vec(up) - prob.residual_vec(down)) / (2 * h)
    r = prob.residual_vec(p)
    s2 = float(r @ r) / (n - k)
    JtJ = J.T @ J
    if not np.all(np.isfinite(JtJ)) or np.linalg.cond(JtJ) > 1e14:
        return None
    cov = np.full((len(p), len(p)), np.nan)
    cov[np.ix_(idx, idx)] = s2 * np.linalg.inv(JtJ)
    return cov


def stderrs(law: Law, cov: np.ndarray | None, free: np.ndarray) -> dict[str, float | None]:
    return {
        n: (float(np.sqrt(cov[i, i])) if cov is not None and free[i] else None)
        for i, n in enumerate(law.params)
    }


def wald_intervals(law: Law, p: np.ndarray, cov: np.ndarray | None, free: np.ndarray) -> dict[str, Interval]:
    values = dict(zip(law.params, map(float, p)))
    ci: dict[str, Interval] = {}
    for name, s in stderrs(law, cov, free).items():
        ci[name] = (values[name] - _Z * s, values[name] + _Z * s) if s is not None else (None, None)
    if law.exponents is not None and cov is not None:
        ia, ib = (law.params.index(e) for e in law.exponents)
        a, b = values[law.exponents[0]], values[law.exponents[1]]
        if free[ia] and free[ib] and a > 0 and b > 0:
            ratio = a / b
            var = ratio**2 * (cov[ia, ia] / a**2 + cov[ib, ib] / b**2 - 2 * cov[ia, ib] / (a * b))
            s = float(np.sqrt(max(var, 0.0)))
            ci[law.ratio] = (ratio - _Z * s, ratio + _Z * s)
    return ci


def fittable(data: FitData, law: Law) -> bool:
    return data.n >= law.n_params + 1 and len(np.unique(data.N)) > 1 and len(np.unique(data.T)) > 1


def bootstrap(law: Law, data: FitData, opts, p_best: np.ndarray) -> tuple[dict[str, Interval], dict]:
    """Percentile intervals from `opts.bootstrap` resamples of the points (each refitted from `p_best`)."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(opts.seed)
    names = list(law.params) + list(law.derived(dict(zip(law.params, p_best))))
    rows: list[list[float]] = []
    skipped = attempts = 0
    disable = {True: False, False: True}.get(opts.progress)  # None: tqdm decides (bar only on a terminal)
    bar = tqdm(total=opts.bootstrap, desc="bootstrap", unit="fit", disable=disable, leave=False)
    while len(rows) < opts.bootstrap and attempts < 3 * opts.bootstrap:
        attempts += 1
        sub = data.subset(rng.integers(0, data.n, data.n))
        if not fittable(sub, law):
            skipped += 1
            continue
        try:
            p, obj = Problem.of(law, sub, opts).local_fit(p_best)
        except ValueError:
            skipped += 1
            continue
        if not np.isfinite(obj):
            skipped += 1
            continue
        rows.append(list(p) + list(law.derived(dict(zip(law.params, p))).values()))
        bar.update(1)
    bar.close()
    info = {"k": opts.bootstrap, "n_ok": len(rows), "n_skipped": skipped, "seed": opts.seed}
    info["method"] = "percentile"
    if len(rows) < 2:
        return {}, info
    arr = np.array(rows)
    pct = 100 * (1 - LEVEL) / 2
    ci = {
        name: (float(np.percentile(arr[:, j], pct)), float(np.percentile(arr[:, j], 100 - pct)))
        for j, name in enumerate(names)
    }
    return ci, info


def profile_intervals(
    prob: Problem, p: np.ndarray, free: np.ndarray
) -> tuple[dict[str, Interval], list[str]]:
    """lmfit `conf_interval` profile-likelihood intervals of the free parameters and the exponent ratio.

    Returns (intervals, notes); a note says where an interval stops at a bound or could not be found.
    """
    law = prob.law
    held = {i: float(p[i]) for i in range(len(p)) if not free[i]}
    names = [n for i, n in enumerate(law.params) if free[i]]
    notes: list[str] = []
    ci: dict[str, Interval] = {}
    mini, result = prob.lmfit_least_squares(prob.parameters(p, held))
    ci.update(_conf_interval(mini, result, names, notes))
    if law.exponents is not None and all(n in names for n in law.exponents):
        a, b = law.exponents
        params = prob.parameters(p, held)
        params.add("ratio", value=float(p[law.params.index(a)] / p[law.params.index(b)]), min=0.0)
        params[b].set(expr=f"{a} / ratio")
        mini = prob.minimizer(params)
        result = mini.minimize(method="least_squares", params=params)
        ratio_ci = _conf_interval(mini, result, ["ratio"], notes)
        ci[law.ratio] = ratio_ci["ratio"]
        notes[:] = [n.replace("ratio:", f"{law.ratio}:") for n in notes]
    return ci, notes


def _conf_interval(mini, result, names: list[str], notes: list[str]) -> dict[str, Interval]:
    if len(names) < 2 and sum(p.vary for p in result.params.values()) < 2:
        notes.append("profile: fewer than two free parameters, no profile intervals")
        return {n: (None, None) for n in names}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = lmfit.conf_interval(mini, result, p_names=names, sigmas=[LEVEL])
    except (lmfit.minimizer.MinimizerException, ValueError, RuntimeError) as exc:
        notes.append(f"profile intervals unavailable ({exc}); use --ci bootstrap")
        return {n: (None, None) for n in names}
    for w in caught:
        text = str(w.message)
        if "Bound reached" in text or "maxiter" in text:
            notes.append(f"profile: {text.split(' with ')[0].split(' and ')[0]} ({text})")
    out: dict[str, Interval] = {}
    for name in names:
        rows = table[name]
        lo, hi = rows[0][1], rows[-1][1]
        out[name] = (float(lo) if np.isfinite(lo) else None, float(hi) if np.isfinite(hi) else None)
    return out
