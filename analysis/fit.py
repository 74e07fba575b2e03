"""Fit a scaling law: multi-start bounded least squares (scipy), uncertainty, cross-validation, bootstrap, D-profile.

`fit_law(data, law, FitOptions(...)) -> FitResult`. The fit starts from the law's grid: every grid point is
scored at once (vectorised), and a bounded local fit runs from the best few. The loss is least squares on y by
default (scipy's trust-region-reflective `least_squares`, with the law's analytic Jacobian), or Huber on log
residuals minimised with L-BFGS-B (the Chinchilla-style fit: `loss="huber", log_space=True`).

Reported: per parameter value, standard error (Gauss-Newton, conditional on parameters that sit on a bound,
which are flagged), 95% interval (bootstrap percentiles with `bootstrap=K`, else Wald); SSE, RMSE, R^2,
AIC/BIC (from the SSE on y), leave-one-out RMSE, leave-largest-N-out extrapolation error, and for laws with a
floor (D or E) the profile of the exponents with the floor fixed on a grid.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import least_squares, minimize

from analysis.dataset import FitData, validate_for_law
from analysis.errors import AnalysisInputError
from analysis.laws import Law

LOSSES = ("lsq", "huber")
_TINY = 1e-300


@dataclass
class FitOptions:
    loss: str = "lsq"  # "lsq" | "huber"
    huber_delta: float = 1e-3
    log_space: bool = False  # residuals log(pred) - log(y) instead of pred - y
    n_starts: int = 4  # local fits, from the best-scoring points of the law's start grid
    bootstrap: int = 0  # resamples for percentile intervals (0: Wald intervals from the standard errors)
    seed: int = 0
    exclude_outliers: int = 0  # drop the K worst-fitting points and refit
    loo: bool = True
    extrapolation: bool = True
    d_profile: bool = True
    d_profile_points: int = 21
    progress: bool | None = False  # tqdm bar on the bootstrap (None: only on a terminal)

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise AnalysisInputError(f"unknown loss '{self.loss}': choose one of {', '.join(LOSSES)}")
        if not self.huber_delta > 0:
            raise AnalysisInputError(f"--huber-delta must be > 0 (got {self.huber_delta})")
        if self.bootstrap < 0 or self.exclude_outliers < 0 or self.n_starts < 1:
            raise AnalysisInputError("--bootstrap and --exclude-outliers must be >= 0, --starts >= 1")


@dataclass
class ParamEstimate:
    name: str
    value: float
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    lower: float
    upper: float
    at_bound: str | None  # "lower" | "upper" | None


@dataclass
class FitResult:
    law: str
    formula: str
    options: dict
    params: dict[str, ParamEstimate]
    derived: dict[str, dict]
    sse: float
    rmse: float
    r2: float
    aic: float
    bic: float
    objective: float
    loo_rmse: float | None
    extrapolation: dict | None
    n_points: int
    excluded: list[dict]
    data: dict
    fit_time_s: float
    total_time_s: float
    starts: dict
    bootstrap: dict | None
    d_profile: list[dict] | None
    residuals: list[float]
    warnings: list[str] = field(default_factory=list)
    text_tokens: float | None = None

    def values(self) -> dict[str, float]:
        return {name: p.value for name, p in self.params.items()}

    def to_dict(self) -> dict:
        out = asdict(self)
        return _jsonable(out)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


# ------------------------------------------------------------------------------------------------ objective
def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def _residuals(pred: np.ndarray, y: np.ndarray, log_space: bool) -> np.ndarray:
    if log_space:
        return np.log(np.maximum(pred, _TINY)) - np.log(y)
    return pred - y


def _objective(r: np.ndarray, opts: FitOptions) -> np.ndarray:
    """Loss summed over the last axis (works for one residual vector or a [k, n] batch)."""
    if opts.loss == "huber":
        return _huber(r, opts.huber_delta).sum(axis=-1)
    return (r**2).sum(axis=-1)


@dataclass
class _Problem:
    law: Law
    N: np.ndarray
    T: np.ndarray
    y: np.ndarray
    bounds: list[tuple[float, float]]
    opts: FitOptions

    @classmethod
    def of(cls, law: Law, data: FitData, opts: FitOptions) -> _Problem:
        return cls(law, data.N, data.T, data.y, law.bounds(data.N, data.T, data.y), opts)

    def residual_vec(self, p: np.ndarray) -> np.ndarray:
        return _residuals(self.law.predict(p, self.N, self.T), self.y, self.opts.log_space)

    def objective_vec(self, p: np.ndarray) -> float:
        return float(_objective(self.residual_vec(p), self.opts))

    def clip(self, p: np.ndarray) -> np.ndarray:
        lo = np.array([b[0] for b in self.bounds])
        hi = np.array([b[1] for b in self.bounds])
        return np.clip(p, lo, hi)

    def residual_jac(self, p: np.ndarray) -> np.ndarray | None:
        """d residual / d params [n, n_params] from the law's analytic Jacobian (None if it has none)."""
        if self.law.jac is None:
            return None
        J = np.column_stack(self.law.jac(self.N, self.T, *p))
        if self.opts.log_space:
            J = J / np.maximum(self.law.predict(p, self.N, self.T), _TINY)[:, None]
        return J

    def local_fit(self, start: np.ndarray, fixed: dict[int, float] | None = None) -> tuple[np.ndarray, float]:
        """One bounded local fit from `start` (scipy); `fixed` holds parameter indices held at a value.

        Least squares: scipy's trust-region-reflective `least_squares`; Huber: L-BFGS-B on the summed Huber
        loss. Both honour the bounds natively, so a parameter can end exactly on its bound.
        """
        fixed = fixed or {}
        base = self.clip(np.asarray(start, dtype=float))
        free = []
        for i, (lo, hi) in enumerate(self.bounds):
            if i in fixed:
                base[i] = fixed[i]
            elif not hi > lo:
                base[i] = lo
            else:
                free.append(i)
        if not free:
            return base, self.objective_vec(base)
        free = np.array(free)
        lo = np.array([self.bounds[i][0] for i in free])
        hi = np.array([self.bounds[i][1] for i in free])

        def full(x):
            q = base.copy()
            q[free] = x
            return q

        def jac(x):
            return self.residual_jac(full(x))[:, free]

        x0 = base[free]
        if self.opts.loss == "huber":
            delta = self.opts.huber_delta

            def loss_and_grad(x):
                r = self.residual_vec(full(x))
                value = float(_huber(r, delta).sum() / delta)
                if self.law.jac is None:
                    return value
                psi = np.clip(r, -delta, delta) / delta  # d huber / d r, scaled like the value
                return value, psi @ jac(x)

            res = minimize(
                loss_and_grad,
                x0,
                jac=self.law.jac is not None,
                method="L-BFGS-B",
                bounds=list(zip(lo, hi)),
                options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000},
            )
        else:
            res = least_squares(
                lambda x: self.residual_vec(full(x)),
                x0,
                jac=jac if self.law.jac is not None else "2-point",
                bounds=(lo, hi),
                method="trf",
                x_scale="jac",
            )
        p = full(res.x)
        return p, self.objective_vec(p)

    def multi_start(self, extra_starts: list[np.ndarray] = (), n_starts: int | None = None) -> dict:
        """Score the law's start grid in one go, run local fits from the best few (plus `extra_starts`)."""
        grid = self.law.starts(self.N, self.T, self.y)
        grid = np.array([self.clip(g) for g in grid])
        with np.errstate(all="ignore"):
            pred = self.law.predict_many(grid, self.N, self.T)
            scores = _objective(_residuals(pred, self.y[None, :], self.opts.log_space), self.opts)
        scores = np.where(np.isfinite(scores), scores, np.inf)
        order = np.argsort(scores, kind="stable")[: n_starts or self.opts.n_starts]
        fits = []
        for start in list(extra_starts) + [grid[i] for i in order]:
            try:
                fits.append(self.local_fit(start))
            except ValueError:  # non-finite residuals at the start: that start failed, the others may not
                continue
        if not fits:
            raise AnalysisInputError(
                f"the '{self.law.name}' fit failed from every start (NaN predictions): check the data's scale "
                "and that the law suits it"
            )
        objectives = np.array([f[1] for f in fits])
        best = int(np.nanargmin(objectives))
        agree = int(np.sum(objectives <= objectives[best] * (1 + 1e-6) + 1e-15))
        return {
            "p": fits[best][0],
            "objective": fits[best][1],
            "grid_size": len(grid),
            "n_local": len(fits),
            "agree": agree,
        }


# ---------------------------------------------------------------------------------------------- statistics
def _at_bound(value: float, lo: float, hi: float) -> str | None:
    span = hi - lo if np.isfinite(hi - lo) else max(1.0, abs(value))
    tol = 1e-6 * max(span, 1e-12)
    if value - lo <= tol:
        return "lower"
    if np.isfinite(hi) and hi - value <= tol:
        return "upper"
    return None


def _covariance(prob: _Problem, p: np.ndarray, free: np.ndarray) -> np.ndarray | None:
    """Gauss-Newton covariance s^2 (J^T J)^-1 over the free parameters (NaN rows/cols for the others)."""
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


def _fit_stats(y: np.ndarray, pred: np.ndarray, k: int) -> dict:
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


def _fittable(data: FitData, law: Law) -> bool:
    return data.n >= law.n_params + 1 and len(np.unique(data.N)) > 1 and len(np.unique(data.T)) > 1


def _derived(law: Law, values: dict) -> dict[str, float]:
    if law.exponents is None:
        return {}
    a, b = (values[e] for e in law.exponents)
    return {f"{law.exponents[0]}/{law.exponents[1]}": a / b if b > 0 else float("inf")}


# ------------------------------------------------------------------------------------------------- the fit
def fit_law(
    data: FitData, law: Law, opts: FitOptions | None = None, text_tokens: float | None = None
) -> FitResult:
    """Fit `law` to `data`. Raises AnalysisInputError on data the law cannot be fitted to."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _fit_law(data, law, opts, text_tokens)


def _fit_law(data: FitData, law: Law, opts: FitOptions | None, text_tokens: float | None) -> FitResult:
    opts = opts or FitOptions()
    opts.check()
    validate_for_law(data, law, opts.log_space)
    t_total = time.perf_counter()
    warns: list[str] = []

    excluded: list[dict] = []
    if opts.exclude_outliers:
        if data.n - opts.exclude_outliers < law.n_params + 1:
            raise AnalysisInputError(
                f"--exclude-outliers {opts.exclude_outliers} leaves {data.n - opts.exclude_outliers} of {data.n} "
                f"points, fewer than the {law.n_params + 1} the '{law.name}' law needs; exclude fewer"
            )
        prob0 = _Problem.of(law, data, opts)
        p0 = prob0.multi_start()["p"]
        r0 = prob0.residual_vec(p0)
        worst = np.argsort(-np.abs(r0), kind="stable")[: opts.exclude_outliers]
        for i in worst:
            excluded.append(
                {
                    "row": _py(data.rows[i]),
                    "N": float(data.N[i]),
                    "T": float(data.T[i]),
                    "y": float(data.y[i]),
                    "residual": float(r0[i]),
                }  # fmt: skip
            )
        keep = np.ones(data.n, bool)
        keep[worst] = False
        data = data.subset(keep)
        validate_for_law(data, law, opts.log_space)
        warns.append(
            "excluded the worst-fitting points: "
            + "; ".join(f"row {e['row']} (N={e['N']:g}, T={e['T']:g}, y={e['y']:.4g})" for e in excluded)
        )

    # The fit itself: grid scoring + local fits + standard errors.
    t_fit = time.perf_counter()
    prob = _Problem.of(law, data, opts)
    ms = prob.multi_start()
    p = ms["p"]
    bound_flags = [_at_bound(v, lo, hi) for v, (lo, hi) in zip(p, prob.bounds)]
    for i, flag in enumerate(bound_flags):  # report a parameter on its bound as exactly the bound
        if flag:
            p[i] = prob.bounds[i][0] if flag == "lower" else prob.bounds[i][1]
    free = np.array([f is None for f in bound_flags])
    cov = _covariance(prob, p, free)
    fit_time = time.perf_counter() - t_fit

    values = dict(zip(law.params, map(float, p)))
    for name, flag, (lo, hi) in zip(law.params, bound_flags, prob.bounds):
        if flag:
            edge = lo if flag == "lower" else hi
            hint = (
                " (the floor is weakly identified: see the D-profile; the other standard errors are conditional on it)"
                if name == law.floor
                else " (the data do not constrain it inside its range: the fit is poor or the law does not fit)"
            )
            warns.append(f"parameter {name} = {values[name]:.4g} sits on its {flag} bound {edge:.4g}{hint}")
    if cov is None:
        warns.append(
            "standard errors unavailable: the fit's Jacobian is singular (parameters not identified)"
        )
    if ms["agree"] < 2 and ms["n_local"] > 1:
        warns.append(
            f"only 1 of {ms['n_local']} local fits reached the best objective: the optimum may be fragile (try --starts)"
        )

    pred = law.predict(p, data.N, data.T)
    stats = _fit_stats(data.y, pred, law.n_params)
    if np.isfinite(stats["r2"]) and stats["r2"] < 0.5:
        warns.append(
            f"the law explains little of the variance (R^2 = {stats['r2']:.3f}): treat the exponents with care"
        )

    stderr = {
        n: (float(np.sqrt(cov[i, i])) if cov is not None and free[i] else None)
        for i, n in enumerate(law.params)
    }
    derived_vals = _derived(law, values)

    # Bootstrap (percentile intervals) or Wald intervals from the standard errors.
    boot_info = None
    ci: dict[str, tuple[float | None, float | None]] = {}
    if opts.bootstrap:
        samples, boot_info = _bootstrap(law, data, opts, p)
        if boot_info["n_ok"] >= 2:
            for name in list(law.params) + list(derived_vals):
                col = samples[name]
                ci[name] = (float(np.percentile(col, 2.5)), float(np.percentile(col, 97.5)))
        if boot_info["n_skipped"]:
            warns.append(
                f"bootstrap: {boot_info['n_skipped']} resamples skipped (a single N or T value, or a failed fit)"
            )
    else:
        for name in law.params:
            s = stderr[name]
            ci[name] = (values[name] - 1.96 * s, values[name] + 1.96 * s) if s is not None else (None, None)
        if law.exponents is not None and cov is not None:
            ia, ib = (law.params.index(e) for e in law.exponents)
            a, b = values[law.exponents[0]], values[law.exponents[1]]
            if free[ia] and free[ib] and a > 0 and b > 0:
                ratio = a / b
                var = ratio**2 * (cov[ia, ia] / a**2 + cov[ib, ib] / b**2 - 2 * cov[ia, ib] / (a * b))
                s = float(np.sqrt(max(var, 0.0)))
                ci[next(iter(derived_vals))] = (ratio - 1.96 * s, ratio + 1.96 * s)

    params_out = {
        name: ParamEstimate(name, values[name], stderr[name], *ci.get(name, (None, None)), lo, hi, flag)
        for name, flag, (lo, hi) in zip(law.params, bound_flags, prob.bounds)
    }
    derived_out = {
        name: {"value": v, "ci_low": ci.get(name, (None, None))[0], "ci_high": ci.get(name, (None, None))[1]}
        for name, v in derived_vals.items()
    }

    loo = _loo_rmse(law, data, opts, p) if opts.loo else None
    extrap = _extrapolation(law, data, opts, p) if opts.extrapolation else None
    if opts.extrapolation and extrap is not None and "reason" in extrap:
        warns.append(f"no extrapolation check: {extrap['reason']}")
    profile = _floor_profile(law, data, opts, p) if (opts.d_profile and law.floor) else None

    return FitResult(
        law=law.name,
        formula=law.formula,
        options=asdict(opts),
        params=params_out,
        derived=derived_out,
        objective=ms["objective"],
        loo_rmse=loo,
        extrapolation=extrap,
        n_points=data.n,
        excluded=excluded,
        data=data.describe(),
        fit_time_s=fit_time,
        total_time_s=time.perf_counter() - t_total,
        starts={"grid": ms["grid_size"], "local_fits": ms["n_local"], "reached_best": ms["agree"]},
        bootstrap=boot_info,
        d_profile=profile,
        residuals=[float(v) for v in (data.y - pred)],
        warnings=warns,
        text_tokens=text_tokens,
        **stats,
    )


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def _bootstrap(law: Law, data: FitData, opts: FitOptions, p_best: np.ndarray) -> tuple[dict, dict]:
    from tqdm.auto import tqdm

    rng = np.random.default_rng(opts.seed)
    names = list(law.params) + (list(_derived(law, dict(zip(law.params, p_best)))) if law.exponents else [])
    rows: list[list[float]] = []
    skipped = 0
    disable = {True: False, False: True}.get(opts.progress)  # None: tqdm decides (bar only on a terminal)
    bar = tqdm(total=opts.bootstrap, desc="bootstrap", unit="fit", disable=disable, leave=False)
    attempts = 0
    while len(rows) < opts.bootstrap and attempts < 3 * opts.bootstrap:
        attempts += 1
        sub = data.subset(rng.integers(0, data.n, data.n))
        if not _fittable(sub, law):
            skipped += 1
            continue
        prob = _Problem.of(law, sub, opts)
        try:
            p, obj = prob.local_fit(p_best)
        except ValueError:
            skipped += 1
            continue
        if not np.isfinite(obj):
            skipped += 1
            continue
        vals = dict(zip(law.params, p))
        rows.append(list(p) + list(_derived(law, vals).values()))
        bar.update(1)
    bar.close()
    arr = np.array(rows) if rows else np.empty((0, len(names)))
    samples = {name: arr[:, j] for j, name in enumerate(names)}
    return samples, {
        "k": opts.bootstrap,
        "n_ok": len(rows),
        "n_skipped": skipped,
        "seed": opts.seed,
        "method": "percentile",
    }


def _loo_rmse(law: Law, data: FitData, opts: FitOptions, p_best: np.ndarray) -> float | None:
    errs = []
    for i in range(data.n):
        keep = np.ones(data.n, bool)
        keep[i] = False
        sub = data.subset(keep)
        if not _fittable(sub, law):
            continue
        try:
            p, _ = _Problem.of(law, sub, opts).local_fit(p_best)
        except ValueError:
            continue
        errs.append(float(law.predict(p, data.N[i : i + 1], data.T[i : i + 1])[0] - data.y[i]))
    return float(np.sqrt(np.mean(np.square(errs)))) if errs else None


def _extrapolation(law: Law, data: FitData, opts: FitOptions, p_best: np.ndarray) -> dict:
    n_top = float(data.N.max())
    train_mask = data.N < n_top
    train, test = data.subset(train_mask), data.subset(~train_mask)
    if not _fittable(train, law):
        return {
            "held_out_N": n_top,
            "reason": f"without N = {n_top:g} too few points or N values are left to fit ({train.n} points)",
        }
    ms = _Problem.of(law, train, opts).multi_start(extra_starts=[p_best])
    err = law.predict(ms["p"], test.N, test.T) - test.y
    return {
        "held_out_N": n_top,
        "n_test": int(test.n),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
        "max_abs": float(np.max(np.abs(err))),
    }


def _floor_profile(law: Law, data: FitData, opts: FitOptions, p_best: np.ndarray) -> list[dict]:
    """The exponents with the floor (D) held at each value of a grid over [0, min y)."""
    prob = _Problem.of(law, data, opts)
    j = law.params.index(law.floor)
    lo, hi = prob.bounds[j]
    if not hi > lo:
        return []
    grid = np.linspace(lo, lo + 0.95 * (hi - lo), opts.d_profile_points)
    out, start = [], p_best.copy()
    for d in grid:
        start[j] = d
        try:
            p, obj = prob.local_fit(start, fixed={j: float(d)})
        except ValueError:
            continue
        start = p.copy()
        vals = dict(zip(law.params, map(float, p)))
        pred = law.predict(p, data.N, data.T)
        row = {law.floor: float(d), **{k: v for k, v in vals.items() if k != law.floor}}
        row.update(_derived(law, vals))
        row["sse"] = float(((data.y - pred) ** 2).sum())
        row["objective"] = obj
        out.append(row)
    return out
