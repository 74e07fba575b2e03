"""What one image costs at inference: the paper's count 2N(Q+T), or the full count a deployment pays.

  paper  2 N (Q + T)
  full   2 N (Q + T + q) + F + p T
         F  fixed per image: the vision tower (and the compressor's T-independent part)
         p  per visual token: the compressor's output and the projector MLP
         q  tokens of QueCC's separate query pass (the LLM run once more over the question; 0 in prefix mode)

The full count's sizes come from the runs' accounting (`result.json`: `flops_breakdown` with vision_tower,
compressor, projector_mlp, query_pass; see vlmscale/flops.py), read when a sweep is fitted and kept in fit.json
as `cost_accounting`, or from the command line. Everything is in the units of 2N(Q+T) with the fit's N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.errors import AnalysisInputError

COSTS = ("paper", "full")
BREAKDOWN = "flops_breakdown."


@dataclass(frozen=True)
class CostModel:
    text_tokens: float  # Q
    fixed: float = 0.0  # F
    per_visual_token: float = 0.0  # p
    query_tokens: float = 0.0  # q
    name: str = "paper"

    def check(self) -> None:
        for value, what in (
            (self.text_tokens, "--text-tokens"),
            (self.fixed, "--tower-flops + --compressor-flops"),
            (self.per_visual_token, "--per-token-flops"),
            (self.query_tokens, "--query-tokens"),
        ):
            if not (np.isfinite(value) and value >= 0):
                raise AnalysisInputError(f"{what} must be a finite value >= 0 (got {value:g})")

    def flops(self, N, T):
        N, T = np.asarray(N, dtype=float), np.asarray(T, dtype=float)
        return 2.0 * N * (self.text_tokens + T + self.query_tokens) + self.fixed + self.per_visual_token * T

    def llm_size(self, budget: float, T):
        """The N that spends `budget` at T (<= 0 where the rest of the model alone exceeds it)."""
        T = np.asarray(T, dtype=float)
        return (budget - self.fixed - self.per_visual_token * T) / (
            2.0 * (self.text_tokens + T + self.query_tokens)
        )

    def t_range_for(self, budget: float, n_range: tuple[float, float]) -> tuple[float, float]:
        """The T for which llm_size(budget, T) lies in n_range (N falls as T grows): (lowest, highest)."""
        n_lo, n_hi = n_range
        q = self.text_tokens + self.query_tokens
        rest = budget - self.fixed
        return (rest - 2 * n_hi * q) / (self.per_visual_token + 2 * n_hi), (rest - 2 * n_lo * q) / (
            self.per_visual_token + 2 * n_lo
        )

    def formula(self) -> str:
        if self.name == "paper":
            return f"2N(Q+T), Q = {self.text_tokens:g}"
        return (
            f"2N(Q+T+q) + F + pT, Q = {self.text_tokens:g}, q = {self.query_tokens:.4g} (query pass), "
            f"F = {self.fixed:.4g} (tower + compressor), p = {self.per_visual_token:.4g} per visual token"
        )


def accounting_from_table(table: pd.DataFrame, N: np.ndarray) -> dict | None:
    """The full count's sizes from the runs' `flops_breakdown.*` columns, in units of the fit's N.

    `N`: the fit's N of each row of `table` (same order). Returns None when the table has no accounting.
    F is the mean vision-tower cost plus the connector's intercept, p the connector's slope in T (a line
    through compressor + projector_mlp), q the median of query_pass / 2N.
    """
    cols = [f"{BREAKDOWN}{k}" for k in ("vision_tower", "compressor", "projector_mlp", "query_pass")]
    if not all(c in table.columns for c in cols) or "visual_tokens" not in table.columns:
        return None
    frame = table[cols + ["visual_tokens"] + (["llm_params"] if "llm_params" in table else [])]
    values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(values).all():
        return None
    tower, compressor, mlp, query, T = values[:, :5].T
    # Costs are counted with the real parameter count; rescale them to the fit's N units.
    scale = N / values[:, 5] if "llm_params" in table else np.ones_like(N)
    connector = (compressor + mlp) * scale
    if len(np.unique(T)) > 1:
        slope, intercept = np.polyfit(T, connector, 1)
    else:
        slope, intercept = 0.0, float(connector.mean())
    return {
        "fixed": float(np.mean(tower * scale) + max(intercept, 0.0)),
        "per_visual_token": float(max(slope, 0.0)),
        "query_tokens": float(np.median(query * scale / (2 * N))),
        "vision_tower": float(np.mean(tower * scale)),
        "source": "runs' flops_breakdown",
    }


def cost_model(
    kind: str,
    text_tokens: float,
    accounting: dict | None = None,
    tower_flops: float | None = None,
    compressor_flops: float | None = None,
    per_token_flops: float | None = None,
    query_tokens: float | None = None,
) -> CostModel:
    """The paper's or the full count; command-line sizes override the runs' accounting one by one."""
    if kind not in COSTS:
        raise AnalysisInputError(f"unknown --cost '{kind}': choose one of {', '.join(COSTS)}")
    if kind == "paper":
        model = CostModel(float(text_tokens))
        model.check()
        return model
    given = (tower_flops, compressor_flops, per_token_flops, query_tokens)
    if accounting is None and all(v is None for v in given):
        raise AnalysisInputError(
            "--cost full needs the model's other costs: fit a sweep folder whose result.json files have "
            "flops_breakdown (fit.json then carries cost_accounting), or give --tower-flops, --compressor-flops, "
            "--per-token-flops and --query-tokens"
        )
    acc = accounting or {}
    tower = tower_flops if tower_flops is not None else acc.get("vision_tower", 0.0)
    rest = acc.get("fixed", 0.0) - acc.get("vision_tower", 0.0)
    fixed = tower + (compressor_flops if compressor_flops is not None else rest)
    model = CostModel(
        float(text_tokens),
        fixed=float(fixed),
        per_visual_token=float(
            per_token_flops if per_token_flops is not None else acc.get("per_visual_token", 0.0)
        ),
        query_tokens=float(query_tokens if query_tokens is not None else acc.get("query_tokens", 0.0)),
        name="full",
    )
    model.check()
    return model
