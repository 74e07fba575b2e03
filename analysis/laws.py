"""Scaling laws as small declarative objects: formula, parameter names, bounds, start grid.

A law predicts the error y from the LLM size N and the number of visual tokens T (or any second resource).
Each law is a `Law`: a vectorised formula `func(N, T, *params)`, a function giving the parameter bounds for
the data at hand, and a function giving a grid of starting points (built from the data, so the fit does not
depend on the units of N and T). Add a law with `register_law(Law(...))`; `fit`, `compare` and the plots
then accept its name.

Built in:
  paper     y = A / (N^alpha * T^beta) + D     (Li et al. 2024, arXiv 2411.03312), D in [0, min y)
  additive  y = E + A / N^alpha + B / T^beta   (Chinchilla form, Hoffmann et al. 2022), E in [0, min y)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

Bounds = list[tuple[float, float]]
#: Exponents are searched in [0, EXP_MAX]: a larger power of N or T is not a plausible scaling law.
EXP_MAX = 3.0
_EXP_GRID = (0.01, 0.05, 0.15, 0.4, 1.0)
_FLOOR_FRACTIONS = (0.0, 0.5, 0.9)


@dataclass(frozen=True)
class Law:
    """One scaling law.

    func:      (N, T, *params) -> predicted y, numpy-broadcasting (params may be column vectors).
    bounds:    (N, T, y) -> [(lo, hi)] per parameter, for the data being fitted.
    starts:    (N, T, y) -> array [k, n_params] of starting points for the multi-start fit.
    exponents: names of the exponent of N and of T; their ratio is reported under `ratio_name`.
    ratio_name: the name of that ratio in reports (default "<exp N>/<exp T>"); laws whose exponents mean
               something else than the paper's name theirs apart, so "alpha/beta" is always the paper's ratio.
    floor:     name of the irreducible-error parameter (profiled by the D-profile), if any.
    closed_form_t: (params dict, Q) -> compute-optimal T with N free, or None where there is none.
    jac:       (N, T, *params) -> one array d y / d param per parameter (optional: finite differences without).
    """

    name: str
    formula: str
    latex: str
    params: tuple[str, ...]
    func: Callable[..., np.ndarray]
    bounds: Callable[[np.ndarray, np.ndarray, np.ndarray], Bounds]
    starts: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    exponents: tuple[str, str] | None = None
    floor: str | None = None
    closed_form_t: Callable[[dict, float], float | None] | None = None
    jac: Callable[..., tuple] | None = None
    ratio_name: str | None = None

    @property
    def ratio(self) -> str | None:
        """Name of the exponent ratio (None for a law without two exponents)."""
        if self.exponents is None:
            return None
        return self.ratio_name or f"{self.exponents[0]}/{self.exponents[1]}"

    @property
    def n_params(self) -> int:
        return len(self.params)

    def derived(self, values: dict) -> dict[str, float]:
        """{ratio name: exponent of N / exponent of T} ({} for a law without two exponents)."""
        if self.exponents is None:
            return {}
        a, b = (values[e] for e in self.exponents)
        return {self.ratio: a / b if b > 0 else float("inf")}

    def predict(self, params: dict | np.ndarray, N, T) -> np.ndarray:
        """Predicted y at (N, T) for a parameter dict (or array in `self.params` order)."""
        values = [params[p] for p in self.params] if isinstance(params, dict) else list(params)
        return self.func(np.asarray(N, dtype=float), np.asarray(T, dtype=float), *values)

    def predict_many(self, P: np.ndarray, N: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Predictions for many parameter vectors at once: P [k, n_params] -> [k, n_points]."""
        cols = [P[:, i, None] for i in range(P.shape[1])]
        return self.func(N[None, :], T[None, :], *cols)


def _floor_upper(y: np.ndarray) -> float:
    """The floor (D or E) must stay below the smallest observed error, else it trades off with A."""
    return float(np.min(y))


# ---------------------------------------------------------------------------------------------------- paper
def _paper(N, T, A, alpha, beta, D):
    return A / (N**alpha * T**beta) + D


def _paper_jac(N, T, A, alpha, beta, D):
    f = 1.0 / (N**alpha * T**beta)
    return f, -A * f * np.log(N), -A * f * np.log(T), np.ones_like(f)


def _paper_bounds(N, T, y) -> Bounds:
    return [(0.0, np.inf), (0.0, EXP_MAX), (0.0, EXP_MAX), (0.0, _floor_upper(y))]


def _paper_starts(N, T, y) -> np.ndarray:
    """(alpha, beta, D) on a coarse grid; A is then the least-squares value (the law is linear in A)."""
    starts = []
    for alpha, beta, frac in itertools.product(_EXP_GRID, _EXP_GRID, _FLOOR_FRACTIONS):
        D = frac * _floor_upper(y)
        f = 1.0 / (N**alpha * T**beta)
        A = max(float(np.dot(f, y - D) / np.dot(f, f)), 1e-12)
        starts.append((A, alpha, beta, D))
    return np.array(starts)


def _paper_t_star(params: dict, Q: float) -> float | None:
    """With N free, minimising A (2(Q+T)/C)^alpha T^-beta over T gives T* = beta Q / (alpha - beta)."""
    alpha, beta = params["alpha"], params["beta"]
    if alpha <= beta:
        return None
    return beta * Q / (alpha - beta)


PAPER = Law(
    name="paper",
    formula="err = A / (N^alpha * T^beta) + D",
    latex=r"$\mathrm{err} = A\,/\,(N^{\alpha} T^{\beta}) + D$",
    params=("A", "alpha", "beta", "D"),
    func=_paper,
    bounds=_paper_bounds,
    starts=_paper_starts,
    exponents=("alpha", "beta"),
    floor="D",
    closed_form_t=_paper_t_star,
    jac=_paper_jac,
)


# ------------------------------------------------------------------------------------------------- additive
def _additive(N, T, E, A, alpha, B, beta):
    return E + A / N**alpha + B / T**beta


def _additive_jac(N, T, E, A, alpha, B, beta):
    fn, ft = N**-alpha, T**-beta
    return np.ones_like(fn * ft), fn, -A * fn * np.log(N), ft, -B * ft * np.log(T)


def _additive_bounds(N, T, y) -> Bounds:
    return [(0.0, _floor_upper(y)), (0.0, np.inf), (0.0, EXP_MAX), (0.0, np.inf), (0.0, EXP_MAX)]


def _additive_starts(N, T, y) -> np.ndarray:
    """(alpha, beta, E) on a grid; (A, B) by non-negative least squares (the law is linear in them)."""
    starts = []
    for alpha, beta, frac in itertools.product(_EXP_GRID, _EXP_GRID, _FLOOR_FRACTIONS):
        E = frac * _floor_upper(y)
        X = np.column_stack([N**-alpha, T**-beta])
        (A, B), _ = nnls(X, y - E)
        starts.append((E, max(A, 1e-12), alpha, max(B, 1e-12), beta))
    return np.array(starts)


ADDITIVE = Law(
    name="additive",
    formula="y = E + A / N^alpha + B / T^beta",
    latex=r"$y = E + A/N^{\alpha} + B/T^{\beta}$",
    params=("E", "A", "alpha", "B", "beta"),
    func=_additive,
    bounds=_additive_bounds,
    starts=_additive_starts,
    exponents=("alpha", "beta"),
    floor="E",
    jac=_additive_jac,
    # Not the paper's trade-off: here each exponent acts on its own term, so the ratio gets its own name.
    ratio_name="alpha_N/beta_T",
)


LAWS: dict[str, Law] = {}


def register_law(law: Law) -> Law:
    """Make a law available by name to fit/compare/frontier (replaces one of the same name)."""
    LAWS[law.name] = law
    return law


def get_law(name: str) -> Law:
    from analysis.errors import AnalysisInputError

    try:
        return LAWS[name]
    except KeyError:
        raise AnalysisInputError(
            f"unknown law '{name}': choose one of {', '.join(sorted(LAWS))} (or register a new one in analysis/laws.py)"
        ) from None


register_law(PAPER)
register_law(ADDITIVE)
