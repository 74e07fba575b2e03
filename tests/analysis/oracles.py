"""Independent oracles for the analysis tests: nothing here imports `analysis`.

- the laws as plain numpy expressions (data generators, not `Law.predict`);
- the paper's released grid read with pandas alone (error = 1 - accuracy, N in billions as in the file);
- least squares by scipy's `curve_fit` (trust-region reflective) from a grid of starts, an optimiser the
  code under test does not use (it runs `least_squares` with its own Jacobian, then lmfit).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit
from scipy.stats import f as f_dist

REFERENCE = Path(__file__).resolve().parents[2] / "sweeps" / "reference" / "li2024_reasoning.csv"

# The paper's reported exponents for its reasoning grid (Li et al. 2024, arXiv 2411.03312, the joint law's
# fit): two significant figures, from the authors' grid search rather than a least-squares optimum.
PAPER_ALPHA, PAPER_BETA = 0.077, 0.015


def paper_law(N, T, A, alpha, beta, D):
    return A / (N**alpha * T**beta) + D


def additive_law(N, T, E, A, alpha, B, beta):
    return E + A / N**alpha + B / T**beta


def grid(n_values, t_values) -> tuple[np.ndarray, np.ndarray]:
    """Every (N, T) pair, flattened."""
    N, T = np.meshgrid(np.asarray(n_values, float), np.asarray(t_values, float), indexing="ij")
    return N.ravel(), T.ravel()


def reference_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = pd.read_csv(REFERENCE)
    return (
        table["llm_params_b"].to_numpy(float),
        table["visual_tokens"].to_numpy(float),
        1.0 - table["accuracy"].to_numpy(float),
    )


_TIGHT = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=20_000, method="trf")


def _best_fit(model, N, T, y, starts, lower, upper) -> tuple[float, np.ndarray]:
    """The lowest-SSE bounded curve_fit over the starts: (SSE, parameters)."""
    best = (np.inf, None)
    for p0 in starts:
        p, _ = curve_fit(
            lambda X, *q: model(X[0], X[1], *q), (N, T), y, p0=p0, bounds=(lower, upper), **_TIGHT
        )
        sse = float(np.sum((model(N, T, *p) - y) ** 2))
        if sse < best[0]:
            best = (sse, p)
    return best


@lru_cache(maxsize=1)
def reference_optimum() -> dict[str, float]:
    """The paper law's least-squares optimum on the reference grid, D in [0, min y] as the code bounds it,
    from 27 starts spread over the exponents and the floor."""
    N, T, y = reference_grid()
    starts = [
        (0.5, a, b, d * y.min()) for a, b, d in product((0.02, 0.1, 0.3), (0.005, 0.03, 0.1), (0, 0.5, 0.9))
    ]
    sse, (A, alpha, beta, D) = _best_fit(paper_law, N, T, y, starts, [0, 0, 0, 0], [np.inf, 3, 3, y.min()])
    return {"A": A, "alpha": alpha, "beta": beta, "D": D, "sse": sse, "n": y.size}


def reference_sse_with(fixed: dict[str, float]) -> float:
    """The lowest SSE on the reference grid with the parameters in `fixed` held at their values and the
    others refitted (a profile point), by curve_fit from several starts."""
    N, T, y = reference_grid()
    names = ("A", "alpha", "beta", "D")
    free = [n for n in names if n not in fixed]
    bounds = {"A": (0, np.inf), "alpha": (0, 3), "beta": (0, 3), "D": (0, y.min())}
    grid_of = {"A": (0.3, 1.0), "alpha": (0.02, 0.1, 0.3), "beta": (0.005, 0.03), "D": (0.0, 0.5 * y.min())}

    def model(N, T, *q):
        values = dict(fixed, **dict(zip(free, q)))
        return paper_law(N, T, *(values[n] for n in names))

    starts = list(product(*(grid_of[n] for n in free)))
    lower, upper = zip(*(bounds[n] for n in free))
    return _best_fit(model, N, T, y, starts, list(lower), list(upper))[0]


def reference_sse_with_ratio(ratio: float, D: float = 0.0) -> float:
    """The lowest SSE on the reference grid with alpha / beta = `ratio` and D held (A and alpha refitted)."""
    N, T, y = reference_grid()

    def model(N, T, A, alpha):
        return paper_law(N, T, A, alpha, alpha / ratio, D)

    starts = list(product((0.3, 1.0), (0.02, 0.1, 0.3)))
    return _best_fit(model, N, T, y, starts, [0, 0], [np.inf, 3])[0]


def f_statistic(sse_restricted: float, sse_best: float, n_fixed: int, n_points: int, n_free: int) -> float:
    """The F statistic of a restricted fit against the best one: ((S_r - S) / k) / (S / (n - p))."""
    return (sse_restricted - sse_best) / n_fixed / (sse_best / (n_points - n_free))


def f_quantile(n_fixed: int, dof: int, level: float = 0.95) -> float:
    return float(f_dist.ppf(level, n_fixed, dof))
