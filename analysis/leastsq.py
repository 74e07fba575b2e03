"""The point fit: a law's residuals on some data, bounded local fits, and the multi-start over the law's grid.

The many local fits (multi-start, bootstrap, leave-one-out, floor profile) call scipy's trust-region-reflective
`least_squares` with the law's exact Jacobian directly: through lmfit the same fit takes the same evaluations
but twice the time (measured 13.5 vs 7.0 ms per local fit on the reference grid; lmfit adds ~0.2 ms per
evaluation), which would halve benchmarks/fit_speed.py's margin. lmfit does what it is good at on top: the
best fit is finished by `Minimizer(..., method="least_squares")` on `Parameters` carrying the law's bounds (and
held parameters) with the exact Jacobian, which gives the fit report and the profile-likelihood intervals
(analysis/uncertainty.py). Huber on (log) residuals is a scalar loss: scipy's L-BFGS-B minimises it.
"""

from __future__ import annotations

from dataclasses import dataclass

import lmfit
import numpy as np
from scipy.optimize import least_squares, minimize

from analysis.dataset import FitData
from analysis.errors import AnalysisInputError
from analysis.laws import Law

_TINY = 1e-300


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def residuals(pred: np.ndarray, y: np.ndarray, log_space: bool) -> np.ndarray:
    if log_space:
        return np.log(np.maximum(pred, _TINY)) - np.log(y)
    return pred - y


def objective(r: np.ndarray, loss: str, huber_delta: float) -> np.ndarray:
    """Loss summed over the last axis (one residual vector or a [k, n] batch)."""
    if loss == "huber":
        return huber(r, huber_delta).sum(axis=-1)
    return (r**2).sum(axis=-1)


@dataclass
class Problem:
    """One law on one set of points, with the loss options of the fit."""

    law: Law
    N: np.ndarray
    T: np.ndarray
    y: np.ndarray
    bounds: list[tuple[float, float]]
    loss: str = "lsq"
    huber_delta: float = 1e-3
    log_space: bool = False

    @classmethod
    def of(cls, law: Law, data: FitData, opts) -> Problem:
        """`opts`: anything with `loss`, `huber_delta`, `log_space` (a FitOptions)."""
        bounds = law.bounds(data.N, data.T, data.y)
        return cls(law, data.N, data.T, data.y, bounds, opts.loss, opts.huber_delta, opts.log_space)

    def residual_vec(self, p: np.ndarray) -> np.ndarray:
        return residuals(self.law.predict(p, self.N, self.T), self.y, self.log_space)

    def objective_vec(self, p: np.ndarray) -> float:
        return float(objective(self.residual_vec(p), self.loss, self.huber_delta))

    def clip(self, p: np.ndarray) -> np.ndarray:
        lo, hi = np.array(self.bounds).T
        return np.clip(p, lo, hi)

    def residual_jac(self, p: np.ndarray) -> np.ndarray | None:
        """d residual / d params [n, n_params] from the law's analytic Jacobian (None if it has none)."""
        if self.law.jac is None:
            return None
        J = np.column_stack(self.law.jac(self.N, self.T, *p))
        if self.log_space:
            J = J / np.maximum(self.law.predict(p, self.N, self.T), _TINY)[:, None]
        return J

    # --------------------------------------------------------------------------------------- lmfit pieces
    def parameters(self, start: np.ndarray, fixed: dict[int, float] | None = None) -> lmfit.Parameters:
        """lmfit Parameters at `start` (clipped into the bounds); `fixed` indices are held at their value."""
        fixed = fixed or {}
        start = self.clip(np.asarray(start, dtype=float))
        params = lmfit.Parameters()
        for i, (name, (lo, hi)) in enumerate(zip(self.law.params, self.bounds)):
            value = fixed.get(i, start[i] if hi > lo else lo)
            params.add(name, value=float(value), min=lo, max=hi, vary=i not in fixed and hi > lo)
        return params

    def vector(self, params: lmfit.Parameters) -> np.ndarray:
        return np.array([params[name].value for name in self.law.params])

    def minimizer(self, params: lmfit.Parameters) -> lmfit.Minimizer:
        return lmfit.Minimizer(lambda ps: self.residual_vec(self.vector(ps)), params)

    def lmfit_least_squares(
        self, params: lmfit.Parameters
    ) -> tuple[lmfit.Minimizer, lmfit.minimizer.MinimizerResult]:
        """Bounded least squares through lmfit, with the exact Jacobian over the varying parameters."""
        mini = self.minimizer(params)
        kws = {"x_scale": "jac"}
        if self.law.jac is not None:
            names = self.law.params

            def jac(ps):
                free = [names.index(n) for n in ps if ps[n].vary]
                return self.residual_jac(self.vector(ps))[:, free]

            kws["jac"] = jac
        return mini, mini.minimize(method="least_squares", params=params, **kws)

    # ------------------------------------------------------------------------------------------ local fits
    def local_fit(self, start: np.ndarray, fixed: dict[int, float] | None = None) -> tuple[np.ndarray, float]:
        """One bounded local fit from `start`; `fixed` holds parameter indices at a value.

        Raises ValueError when the residuals are not finite at the start.
        """
        params = self.parameters(start, fixed)
        base = self.vector(params)
        free = np.array([i for i, name in enumerate(self.law.params) if params[name].vary])
        if not len(free):
            return base, self.objective_vec(base)

        def full(x):
            q = base.copy()
            q[free] = x
            return q

        def jac(x):
            return self.residual_jac(full(x))[:, free]

        bounds = [self.bounds[i] for i in free]
        if self.loss == "huber":
            p = full(self._huber_fit(full, jac, base[free], bounds))
        else:
            res = least_squares(
                lambda x: self.residual_vec(full(x)),
                base[free],
                jac=jac if self.law.jac is not None else "2-point",
                bounds=tuple(np.array(bounds).T),
                method="trf",
                x_scale="jac",
            )
            p = full(res.x)
        return p, self.objective_vec(p)

    def _huber_fit(self, full, jac, x0: np.ndarray, bounds) -> np.ndarray:
        """Huber loss / delta, minimised by L-BFGS-B inside the bounds (exact gradient when the law has one)."""
        delta = self.huber_delta

        def loss_and_grad(x):
            r = self.residual_vec(full(x))
            value = float(huber(r, delta).sum() / delta)
            if self.law.jac is None:
                return value
            psi = np.clip(r, -delta, delta) / delta  # d huber / d r, scaled like the value
            return value, psi @ jac(x)

        res = minimize(
            loss_and_grad,
            x0,
            jac=self.law.jac is not None,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000},
        )
        return res.x

    def multi_start(self, n_starts: int, extra_starts: list[np.ndarray] = ()) -> dict:
        """Score the law's start grid in one go, run local fits from the best few (plus `extra_starts`)."""
        grid = np.array([self.clip(g) for g in self.law.starts(self.N, self.T, self.y)])
        with np.errstate(all="ignore"):
            pred = self.law.predict_many(grid, self.N, self.T)
            scores = objective(residuals(pred, self.y[None, :], self.log_space), self.loss, self.huber_delta)
        scores = np.where(np.isfinite(scores), scores, np.inf)
        order = np.argsort(scores, kind="stable")[:n_starts]
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
