"""Fit a scaling law: `fit_law(data, law, FitOptions(...)) -> FitResult`, a pipeline of four steps.

1. exclude_outliers  (optional) drop the K worst-fitting points of a first fit
2. point_fit         the law's start grid scored at once, bounded local fits from the best few
                     (analysis/leastsq.py: lmfit least squares with the exact Jacobian, or Huber by L-BFGS-B);
                     a parameter on its bound is flagged and reported as exactly the bound
3. intervals         standard errors and 95% intervals: Wald, bootstrap or profile (analysis/uncertainty.py)
4. diagnostics       SSE, RMSE, R^2, AIC/BIC, leave-one-out, extrapolation to the largest N, the floor profile
                     (analysis/diagnostics.py)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import lmfit
import numpy as np

from analysis import diagnostics, uncertainty
from analysis.dataset import FitData, validate_for_law
from analysis.errors import AnalysisInputError
from analysis.laws import Law
from analysis.leastsq import Problem

LOSSES = ("lsq", "huber")


@dataclass
class FitOptions:
    loss: str = "lsq"  # "lsq" | "huber"
    huber_delta: float = 1e-3
    log_space: bool = False  # residuals log(pred) - log(y) instead of pred - y
    n_starts: int = 4  # local fits, from the best-scoring points of the law's start grid
    bootstrap: int = 0  # resamples for percentile intervals (0: Wald intervals from the standard errors)
    ci: str = "auto"  # "wald" | "bootstrap" | "profile"; auto: bootstrap when bootstrap > 0, else wald
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
        if self.ci not in ("auto", *uncertainty.CI_METHODS):
            raise AnalysisInputError(
                f"unknown --ci '{self.ci}': choose one of {', '.join(uncertainty.CI_METHODS)}"
            )
        if self.ci == "bootstrap" and not self.bootstrap:
            raise AnalysisInputError("--ci bootstrap needs resamples: add --bootstrap K (e.g. 200)")
        if self.ci == "profile" and self.loss != "lsq":
            raise AnalysisInputError("--ci profile profiles the least-squares likelihood: use --loss lsq")

    @property
    def ci_method(self) -> str:
        if self.ci == "auto":
            return "bootstrap" if self.bootstrap else "wald"
        return self.ci


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
    ci_method: str = "wald"
    ratio_name: str | None = None  # the law's name for its exponent ratio (a key of `derived`)
    lmfit_report: str | None = None  # lmfit's fit report at the best fit (least squares only)

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


# ------------------------------------------------------------------------------------------------ pipeline
def fit_law(
    data: FitData, law: Law, opts: FitOptions | None = None, text_tokens: float | None = None
) -> FitResult:
    """Fit `law` to `data`. Raises AnalysisInputError on data the law cannot be fitted to."""
    opts = opts or FitOptions()
    opts.check()
    validate_for_law(data, law, opts.log_space)
    t_total = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        data, excluded, warns = exclude_outliers(law, data, opts)
        point = point_fit(law, data, opts)
        ci, boot_info, ci_warns = intervals(law, data, opts, point)
        diag, diag_warns = run_diagnostics(law, data, opts, point.p)
    return _result(
        law, data, opts, point, ci, boot_info, diag, excluded, warns + point.warnings + ci_warns + diag_warns,
        text_tokens, time.perf_counter() - t_total,
    )  # fmt: skip


def exclude_outliers(law: Law, data: FitData, opts: FitOptions) -> tuple[FitData, list[dict], list[str]]:
    """Drop the `opts.exclude_outliers` points with the largest residuals of a first fit."""
    k = opts.exclude_outliers
    if not k:
        return data, [], []
    if data.n - k < law.n_params + 1:
        raise AnalysisInputError(
            f"--exclude-outliers {k} leaves {data.n - k} of {data.n} points, fewer than the "
            f"{law.n_params + 1} the '{law.name}' law needs; exclude fewer"
        )
    prob = Problem.of(law, data, opts)
    r = prob.residual_vec(prob.multi_start(opts.n_starts)["p"])
    worst = np.argsort(-np.abs(r), kind="stable")[:k]
    excluded = [
        {"row": _py(data.rows[i]), "N": float(data.N[i]), "T": float(data.T[i]), "y": float(data.y[i]),
         "residual": float(r[i])}
        for i in worst
    ]  # fmt: skip
    keep = np.ones(data.n, bool)
    keep[worst] = False
    data = data.subset(keep)
    validate_for_law(data, law, opts.log_space)
    named = "; ".join(f"row {e['row']} (N={e['N']:g}, T={e['T']:g}, y={e['y']:.4g})" for e in excluded)
    return data, excluded, [f"excluded the worst-fitting points: {named}"]


@dataclass
class PointFit:
    prob: Problem
    p: np.ndarray  # best parameters, those on a bound set exactly to it
    bound_flags: list[str | None]
    free: np.ndarray  # parameters not on a bound
    objective: float
    starts: dict
    fit_time_s: float
    warnings: list[str]
    lmfit_report: str | None  # lmfit's report of the best fit (least squares only)


def point_fit(law: Law, data: FitData, opts: FitOptions) -> PointFit:
    """Multi-start bounded fit; flags parameters on a bound and warns on a fragile optimum."""
    t0 = time.perf_counter()
    prob = Problem.of(law, data, opts)
    ms = prob.multi_start(opts.n_starts)
    p, objective, report = ms["p"], ms["objective"], None
    if opts.loss == "lsq":  # lmfit finishes the best fit: same optimum, plus its fit report
        _, result = prob.lmfit_least_squares(prob.parameters(p))
        report = lmfit.fit_report(result)
        if prob.objective_vec(prob.vector(result.params)) <= objective:
            p = prob.vector(result.params)
            objective = prob.objective_vec(p)
    flags = [uncertainty.at_bound(v, lo, hi) for v, (lo, hi) in zip(p, prob.bounds)]
    for i, flag in enumerate(flags):  # report a parameter on its bound as exactly the bound
        if flag:
            p[i] = prob.bounds[i][0] if flag == "lower" else prob.bounds[i][1]
    fit_time = time.perf_counter() - t0
    warns = []
    for name, value, flag, (lo, hi) in zip(law.params, p, flags, prob.bounds):
        if flag:
            hint = (
                " (the floor is weakly identified: see the D-profile; the other standard errors are conditional on it)"
                if name == law.floor
                else " (the data do not constrain it inside its range: the fit is poor or the law does not fit)"
            )
            edge = lo if flag == "lower" else hi
            warns.append(f"parameter {name} = {value:.4g} sits on its {flag} bound {edge:.4g}{hint}")
    if ms["agree"] < 2 and ms["n_local"] > 1:
        warns.append(
            f"only 1 of {ms['n_local']} local fits reached the best objective: the optimum may be fragile (try --starts)"
        )
    starts = {"grid": ms["grid_size"], "local_fits": ms["n_local"], "reached_best": ms["agree"]}
    free = np.array([f is None for f in flags])
    return PointFit(prob, p, flags, free, objective, starts, fit_time, warns, report)


def intervals(law: Law, data: FitData, opts: FitOptions, point: PointFit):
    """(stderr + 95% intervals by the chosen method, bootstrap info or None, warnings)."""
    warns: list[str] = []
    cov = uncertainty.covariance(point.prob, point.p, point.free)
    if cov is None:
        warns.append(
            "standard errors unavailable: the fit's Jacobian is singular (parameters not identified)"
        )
    ci: dict = {"stderr": uncertainty.stderrs(law, cov, point.free)}
    boot_info = None
    method = opts.ci_method
    if method == "bootstrap":
        bounds, boot_info = uncertainty.bootstrap(law, data, opts, point.p)
        if boot_info["n_skipped"]:
            warns.append(
                f"bootstrap: {boot_info['n_skipped']} resamples skipped (a single N or T value, or a failed fit)"
            )
    elif method == "profile":
        bounds, notes = uncertainty.profile_intervals(point.prob, point.p, point.free)
        warns += notes
    else:
        bounds = uncertainty.wald_intervals(law, point.p, cov, point.free)
    ci["bounds"] = bounds
    return ci, boot_info, warns


def run_diagnostics(law: Law, data: FitData, opts: FitOptions, p: np.ndarray) -> tuple[dict, list[str]]:
    warns = []
    out = {"stats": diagnostics.goodness_of_fit(data.y, law.predict(p, data.N, data.T), law.n_params)}
    r2 = out["stats"]["r2"]
    if np.isfinite(r2) and r2 < 0.5:
        warns.append(
            f"the law explains little of the variance (R^2 = {r2:.3f}): treat the exponents with care"
        )
    out["loo_rmse"] = diagnostics.loo_rmse(law, data, opts, p) if opts.loo else None
    out["extrapolation"] = diagnostics.extrapolation(law, data, opts, p) if opts.extrapolation else None
    if out["extrapolation"] is not None and "reason" in out["extrapolation"]:
        warns.append(f"no extrapolation check: {out['extrapolation']['reason']}")
    profile = opts.d_profile and law.floor is not None
    out["d_profile"] = diagnostics.floor_profile(law, data, opts, p) if profile else None
    return out, warns


def _result(
    law, data, opts, point, ci, boot_info, diag, excluded, warns, text_tokens, total_time
) -> FitResult:
    values = dict(zip(law.params, map(float, point.p)))
    bounds = ci["bounds"]
    params = {
        name: ParamEstimate(name, values[name], ci["stderr"][name], *bounds.get(name, (None, None)), lo, hi, flag)
        for name, flag, (lo, hi) in zip(law.params, point.bound_flags, point.prob.bounds)
    }  # fmt: skip
    derived = {
        name: {"value": v, "ci_low": bounds.get(name, (None, None))[0], "ci_high": bounds.get(name, (None, None))[1]}
        for name, v in law.derived(values).items()
    }  # fmt: skip
    return FitResult(
        law=law.name,
        formula=law.formula,
        options=asdict(opts),
        params=params,
        derived=derived,
        objective=point.objective,
        loo_rmse=diag["loo_rmse"],
        extrapolation=diag["extrapolation"],
        n_points=data.n,
        excluded=excluded,
        data=data.describe(),
        fit_time_s=point.fit_time_s,
        total_time_s=total_time,
        starts=point.starts,
        bootstrap=boot_info,
        d_profile=diag["d_profile"],
        residuals=[float(v) for v in (data.y - law.predict(point.p, data.N, data.T))],
        warnings=warns,
        text_tokens=text_tokens,
        ci_method=opts.ci_method,
        ratio_name=law.ratio,
        lmfit_report=point.lmfit_report,
        **diag["stats"],
    )


def _py(v):
    return v.item() if isinstance(v, np.generic) else v
