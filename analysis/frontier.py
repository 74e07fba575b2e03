"""The inference-compute-optimal (N, T): for each FLOPs budget, the pair minimising the predicted error.

Inference FLOPs by a cost model (analysis/costs.py): the paper's 2 N (Q + T) with Q text tokens, or the full
count 2N(Q+T+q) + F + pT. For a budget C the cost fixes N given T, so the search is over T alone, inside the T
range and where the implied N lies in the N range (default: the data's T range, N from the smallest fitted N
up to 4x the largest). A dense log grid over T, refined by a bounded scalar minimiser. Where the law has a
closed form (the `paper` law with alpha > beta: T* = beta (Q + q) / (alpha - beta), N free, p = 0) it is
reported alongside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from analysis.costs import CostModel
from analysis.errors import AnalysisInputError
from analysis.laws import Law, get_law

N_RANGE_FACTOR = 4.0
_GRID = 2001


def inference_flops(N, T, text_tokens: float):
    """2 N (Q + T): forward-pass FLOPs of an N-parameter LLM over Q text and T visual tokens."""
    return 2.0 * np.asarray(N, dtype=float) * (text_tokens + np.asarray(T, dtype=float))


@dataclass
class FrontierSpec:
    law: Law
    params: dict[str, float]
    text_tokens: float
    n_range: tuple[float, float]
    t_range: tuple[float, float]
    cost: CostModel | None = None  # None: the paper's 2N(Q+T) with `text_tokens`

    def __post_init__(self) -> None:
        if self.cost is None:
            self.cost = CostModel(self.text_tokens)

    def with_cost(self, cost: CostModel) -> FrontierSpec:
        return FrontierSpec(self.law, self.params, cost.text_tokens, self.n_range, self.t_range, cost)

    @classmethod
    def from_fit(
        cls,
        fit: dict,
        text_tokens: float | None = None,
        n_range: tuple[float, float] | None = None,
        t_range: tuple[float, float] | None = None,
    ) -> FrontierSpec:
        """From a fit.json dict (`FitResult.to_dict()`), with the default ranges from its data."""
        try:
            law = get_law(fit["law"])
            params = {k: float(v["value"]) for k, v in fit["params"].items()}
            data = fit["data"]
            n_default = (float(data["n_min"]), N_RANGE_FACTOR * float(data["n_max"]))
            t_default = (float(data["t_min"]), float(data["t_max"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AnalysisInputError(
                f"not a fit.json written by `python -m analysis fit` (missing {exc}); re-run the fit"
            ) from None
        if text_tokens is None:
            text_tokens = fit.get("text_tokens") or 50.0
        spec = cls(law, params, float(text_tokens), tuple(n_range or n_default), tuple(t_range or t_default))
        spec.check()
        return spec

    def check(self) -> None:
        if not self.text_tokens >= 0:
            raise AnalysisInputError(f"--text-tokens must be >= 0 (got {self.text_tokens})")
        for (lo, hi), flag in ((self.n_range, "--n-range"), (self.t_range, "--t-range")):
            if not (0 < lo <= hi and np.isfinite(hi)):
                raise AnalysisInputError(f"{flag} {lo:g} {hi:g}: need 0 < LO <= HI")

    def predict(self, N, T):
        return self.law.predict(self.params, N, T)

    def closed_form_t(self) -> float | None:
        """T* with N free; the query pass adds to Q, the fixed cost leaves it alone, a per-token cost breaks it."""
        if self.law.closed_form_t is None or self.cost.per_visual_token > 0:
            return None
        return self.law.closed_form_t(self.params, self.text_tokens + self.cost.query_tokens)

    def default_budgets(self, k: int = 8) -> np.ndarray:
        """Budgets where the optimum can be interior in N: 2 N (Q + T_ref) for N across the N range.

        T_ref is the closed-form T* (clipped to the T range) where it exists, else the geometric middle of the
        T range.
        """
        t_ref = self.closed_form_t()
        if t_ref is None:
            t_ref = float(np.sqrt(self.t_range[0] * self.t_range[1]))
        t_ref = float(np.clip(t_ref, *self.t_range))
        lo, hi = self.cost.flops(np.array(self.n_range), t_ref)
        return np.geomspace(lo, hi, k) if hi > lo else np.array([lo])

    def optimum(self, budget: float) -> dict:
        """The (N, T) minimising predicted error at inference FLOPs == budget, with which bound binds."""
        (n_lo, n_hi), (t_lo, t_hi) = self.n_range, self.t_range
        t_first, t_last = self.cost.t_range_for(budget, self.n_range)
        lo, hi = max(t_lo, t_first), min(t_hi, t_last)
        row = {
            "budget": float(budget),
            "N_opt": np.nan,
            "T_opt": np.nan,
            "error_pred": np.nan,
            "binding": None,
        }
        if not (hi >= lo and hi > 0):
            row["binding"] = "infeasible"
            return row
        lo = max(lo, 1e-12)

        def err_at(logt):
            t = np.exp(logt)
            return self.predict(self.cost.llm_size(budget, t), t)

        grid = np.linspace(np.log(lo), np.log(hi), _GRID)
        errs = err_at(grid)
        i = int(np.nanargmin(errs))
        best_logt, best_err = grid[i], float(errs[i])
        if 0 < i < len(grid) - 1:
            res = minimize_scalar(
                lambda x: float(err_at(x)), bounds=(grid[i - 1], grid[i + 1]), method="bounded",
                options={"xatol": 1e-10},
            )  # fmt: skip
            if res.success and res.fun <= best_err:
                best_logt, best_err = float(res.x), float(res.fun)
        t = float(np.exp(best_logt))
        n = float(self.cost.llm_size(budget, t))
        binding = None
        if np.isclose(t, t_lo, rtol=1e-6):
            binding = "T_min"
        elif np.isclose(t, t_hi, rtol=1e-6):
            binding = "T_max"
        if np.isclose(n, n_lo, rtol=1e-6):
            binding = "N_min" if binding is None else f"{binding},N_min"
        elif np.isclose(n, n_hi, rtol=1e-6):
            binding = "N_max" if binding is None else f"{binding},N_max"
        row.update(N_opt=float(n), T_opt=t, error_pred=best_err, binding=binding)
        return row

    def frontier(self, budgets=None) -> pd.DataFrame:
        budgets = self.default_budgets() if budgets is None else np.asarray(budgets, dtype=float)
        if (budgets <= 0).any() or not np.isfinite(budgets).all():
            raise AnalysisInputError("--budgets must be positive finite FLOPs values")
        table = pd.DataFrame([self.optimum(b) for b in budgets])
        t_star = self.closed_form_t()
        table["T_closed_form"] = np.nan if t_star is None else t_star
        table["text_tokens"] = self.text_tokens
        table["cost"] = self.cost.name
        return table


def frontier_both_costs(spec: FrontierSpec, full: CostModel, budgets=None) -> pd.DataFrame:
    """Per budget of real FLOPs: the optimum under the paper's count and under the full count, side by side.

    `paper_choice_full_flops` is what the paper count's choice really costs: above the budget when the
    tower, connector and query pass are not free.
    """
    real = spec.with_cost(full)
    budgets = real.default_budgets() if budgets is None else np.asarray(budgets, dtype=float)
    paper, counted = spec.frontier(budgets), real.frontier(budgets)
    out = pd.DataFrame({"budget": paper["budget"]})
    for tag, table in (("paper", paper), ("full", counted)):
        for col in ("N_opt", "T_opt", "error_pred", "binding"):
            out[f"{col}_{tag}"] = table[col]
    out["paper_choice_full_flops"] = full.flops(paper["N_opt"], paper["T_opt"])
    out["T_closed_form_paper"] = paper["T_closed_form"]
    out["T_closed_form_full"] = counted["T_closed_form"]
    out["text_tokens"] = spec.text_tokens
    return out
