"""Short text tables for the terminal: a fit, a frontier, a law comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.fit import FitResult


def _g(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}"


def fit_summary(fit: FitResult) -> str:
    d = fit.data
    y_desc = f"1 - {d['y_col']}" if d["accuracy"] else d["y_col"]
    method = "bootstrap" if fit.bootstrap else "Wald"
    lines = [
        f"{fit.law} law: {fit.formula}",
        f"{fit.n_points} points: N = {d['n_col']}, T = {d['t_col']}, y = {y_desc}"
        + (f"; left out: {d['left_out']}" if d["left_out"] else "")
        + (f"; excluded {len(fit.excluded)} outliers" if fit.excluded else ""),
        f"loss: {fit.options['loss']}" + (" on log residuals" if fit.options["log_space"] else ""),
        "",
        f"{'param':<12}{'value':>12}{'stderr':>12}   95% CI ({method})",
    ]
    for p in fit.params.values():
        flag = f"  <- at {p.at_bound} bound" if p.at_bound else ""
        ci = f"[{_g(p.ci_low)}, {_g(p.ci_high)}]" if p.ci_low is not None else "-"
        lines.append(f"{p.name:<12}{_g(p.value):>12}{_g(p.stderr, 3):>12}   {ci}{flag}")
    for name, dv in fit.derived.items():
        ci = f"[{_g(dv['ci_low'])}, {_g(dv['ci_high'])}]" if dv["ci_low"] is not None else "-"
        lines.append(f"{name:<12}{_g(dv['value']):>12}{'':>12}   {ci}")
    lines.append("")
    lines.append(
        f"SSE {fit.sse:.4g}  RMSE {fit.rmse:.4g}  R^2 {_g(fit.r2)}  AIC {fit.aic:.2f}  BIC {fit.bic:.2f}  "
        f"LOO-RMSE {_g(fit.loo_rmse)}"
    )
    ex = fit.extrapolation
    if ex and "rmse" in ex:
        lines.append(
            f"extrapolation to the largest N ({ex['held_out_N']:g}, fitted without it): RMSE {ex['rmse']:.4g}, "
            f"bias {ex['bias']:+.3g}"
        )
    lines.append(
        f"fit time {fit.fit_time_s * 1e3:.1f} ms ({fit.starts['grid']} grid starts scored, "
        f"{fit.starts['local_fits']} local fits, {fit.starts['reached_best']} reached the best)"
    )
    return "\n".join(lines)


def frontier_table(table: pd.DataFrame) -> str:
    shown = table[["budget", "N_opt", "T_opt", "error_pred", "binding"]].copy()
    shown["binding"] = shown["binding"].fillna("")
    text = shown.to_string(
        index=False,
        formatters={
            "budget": "{:.4g}".format,
            "N_opt": "{:.4g}".format,
            "T_opt": "{:.3f}".format,
            "error_pred": "{:.4f}".format,
        },
    )
    t_star = table["T_closed_form"].iloc[0] if len(table) else np.nan
    q = table["text_tokens"].iloc[0] if len(table) else np.nan
    closed = ""
    if np.isfinite(t_star):
        closed = f"closed form (N free): T* = beta Q / (alpha - beta) = {t_star:.3f}"
        feasible = table["T_opt"].dropna()
        if len(feasible) and t_star < feasible.min() * (1 - 1e-6):
            closed += " (below the allowed T range: the optimum is its smallest T)"
    return f"compute-optimal (N, T) per inference-FLOPs budget 2N(Q+T), Q = {q:g}\n{text}\n{closed}".rstrip()


def compare_frame(fits: dict[str, FitResult], rank_by: str) -> pd.DataFrame:
    """One row per law, numeric, best first by `rank_by`."""
    rows = []
    for name, f in fits.items():
        ratio = next(iter(f.derived.values()), {}).get("value") if f.derived else None
        ex = f.extrapolation or {}
        rows.append(
            {
                "law": name,
                "k": len(f.params),
                "sse": f.sse,
                "rmse": f.rmse,
                "r2": f.r2,
                "aic": f.aic,
                "bic": f.bic,
                "loo_rmse": f.loo_rmse,
                "extrap_rmse": ex.get("rmse"),
                "alpha/beta": ratio,
                "at_bound": ",".join(p.name for p in f.params.values() if p.at_bound) or "",
                "formula": f.formula,
            }
        )
    frame = pd.DataFrame(rows)
    frame = frame.sort_values(rank_by, na_position="last", kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    if "aic" in frame and len(frame):
        frame["delta_aic"] = frame["aic"] - frame["aic"].min()
    return frame


def compare_strings(frame: pd.DataFrame) -> pd.DataFrame:
    cols = [
        "rank",
        "law",
        "k",
        "sse",
        "rmse",
        "r2",
        "aic",
        "delta_aic",
        "bic",
        "loo_rmse",
        "extrap_rmse",
        "alpha/beta",
        "at_bound",
    ]
    out = frame[[c for c in cols if c in frame]].copy()
    for c in ("sse", "rmse", "loo_rmse", "extrap_rmse"):
        out[c] = out[c].map(lambda v: _g(v, 3))
    for c in ("r2", "alpha/beta"):
        out[c] = out[c].map(lambda v: _g(v, 4))
    for c in ("aic", "delta_aic", "bic"):
        out[c] = out[c].map(lambda v: "-" if v is None or not np.isfinite(v) else f"{v:.2f}")
    out["at_bound"] = out["at_bound"].replace("", "-")
    return out.astype(str)
