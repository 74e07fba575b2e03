"""What the analysis hands back: text tables for the terminal and the files it writes (fit.json, CSV, ...).

The CLI parses arguments and calls these; nothing else in `analysis` writes files (the plots write theirs).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fit import FitResult

_CI_NAMES = {"wald": "Wald", "bootstrap": "bootstrap", "profile": "profile likelihood"}


def _g(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}"


def fit_summary(fit: FitResult) -> str:
    d = fit.data
    y_desc = f"1 - {d['y_col']}" if d["accuracy"] else d["y_col"]
    method = _CI_NAMES.get(fit.ci_method, fit.ci_method)
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
        lines.append(f"{name:<12}{_g(dv['value']):>12}{'':>12}   {ci}   (exponent ratio)")
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
        ratio = f.derived[f.ratio_name]["value"] if f.ratio_name in f.derived else None
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
                "ratio": f.ratio_name or "-",
                "exponent_ratio": ratio,
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
        "exponent ratio",
        "at_bound",
    ]
    frame = frame.copy()
    frame["exponent ratio"] = [
        f"{name} {_g(v)}" if name != "-" else "-" for name, v in zip(frame["ratio"], frame["exponent_ratio"])
    ]
    out = frame[[c for c in cols if c in frame]].copy()
    for c in ("sse", "rmse", "loo_rmse", "extrap_rmse"):
        out[c] = out[c].map(lambda v: _g(v, 3))
    for c in ("r2",):
        out[c] = out[c].map(lambda v: _g(v, 4))
    for c in ("aic", "delta_aic", "bic"):
        out[c] = out[c].map(lambda v: "-" if v is None or not np.isfinite(v) else f"{v:.2f}")
    out["at_bound"] = out["at_bound"].replace("", "-")
    return out.astype(str)


# ------------------------------------------------------------------------------------------------- files
def _write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=2) + "\n")
    return path


def write_fit(record: dict, out: str | Path) -> list[Path]:
    """fit.json (the FitResult record, plus what the CLI added) and lmfit's fit report as fit_report.txt."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [_write_json(out / "fit.json", record)]
    if record.get("lmfit_report"):
        note = (
            "# lmfit's report of the best fit, every parameter free inside its bounds: a parameter on its\n"
            "# bound shows lmfit's unconditional error here; fit.json's stderr and intervals hold it on the bound.\n"
        )
        (out / "fit_report.txt").write_text(note + record["lmfit_report"] + "\n")
        paths.append(out / "fit_report.txt")
    return paths


def write_frontier(table: pd.DataFrame, meta: dict, out: str | Path, stem: str) -> list[Path]:
    """<stem>.csv (one row per budget) and <stem>.json (`meta` plus the rows)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{stem}.csv", index=False)
    _write_json(out / f"{stem}.json", {**meta, "rows": json.loads(table.to_json(orient="records"))})
    return [out / f"{stem}.csv", out / f"{stem}.json"]


def write_compare(
    frame: pd.DataFrame, shown: pd.DataFrame, fits: dict, meta: dict, out: str | Path
) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "compare.csv", index=False)
    (out / "compare.md").write_text(markdown(shown) + "\n")
    _write_json(out / "compare.json", {**meta, "fits": {k: f.to_dict() for k, f in fits.items()}})
    return [out / "compare.csv", out / "compare.md", out / "compare.json"]


def markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    sep = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(map(str, r)) + " |" for r in frame.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


# ------------------------------------------------------------------------------------------- costs, split
def frontier_costs_table(table: pd.DataFrame, paper_formula: str, full_formula: str) -> str:
    """The paper's and the full count's optimum per budget of real FLOPs, side by side."""
    shown = pd.DataFrame(
        {
            "budget": table["budget"].map("{:.4g}".format),
            "N (paper)": table["N_opt_paper"].map(_g),
            "T (paper)": table["T_opt_paper"].map(lambda v: _g(v, 4)),
            "binding (paper)": table["binding_paper"].fillna("").astype(str),
            "its real cost": table["paper_choice_full_flops"].map(_g),
            "N (full)": table["N_opt_full"].map(_g),
            "T (full)": table["T_opt_full"].map(lambda v: _g(v, 4)),
            "err (paper)": table["error_pred_paper"].map(lambda v: _g(v, 4)),
            "err (full)": table["error_pred_full"].map(lambda v: _g(v, 4)),
            "binding (full)": table["binding_full"].fillna("").astype(str),
        }
    )
    t_p, t_f = table["T_closed_form_paper"].iloc[0], table["T_closed_form_full"].iloc[0]
    closed = f"closed form T* (N free): paper {_g(t_p, 4)}, full {_g(t_f, 4)}"
    return (
        f"compute-optimal (N, T) per budget of real FLOPs\n  paper: {paper_formula}\n  full:  {full_formula}\n"
        f"{shown.to_string(index=False)}\n{closed}"
    )


def category_summary(results: dict, text_tokens: float) -> str:
    """One line per category: alpha, beta, the ratio with its interval, optimal T at Q, R^2, a flat warning.

    `results`: category -> {"fit": FitResult, "record": the fit.json dict, "flat": str | None}.
    """
    lines = [f"per-category fits (Q = {text_tokens:g} for the optimal T):"]
    for cat, res in results.items():
        fit, record = res["fit"], res["record"]
        v = fit.values()
        ratio = fit.derived.get(fit.ratio_name, {})
        ci = f"[{_g(ratio.get('ci_low'), 3)}, {_g(ratio.get('ci_high'), 3)}]"
        exps = "  ".join(f"{e} {_g(v.get(e), 3)}" for e in ("alpha", "beta") if e in v)
        t_star = record.get("T_closed_form")
        t_text = _g(t_star, 3) if t_star is not None else "none (alpha <= beta: the fewest tokens never win)"
        lines.append(
            f"  {cat:<10} {exps}  {fit.ratio_name} {_g(ratio.get('value'), 3)} {ci} ({_CI_NAMES[fit.ci_method]})  "
            f"T* {t_text}  R^2 {_g(fit.r2, 3)}  ({fit.n_points} points)"
        )
        on_bound = [f"{p.name} ({p.at_bound})" for p in fit.params.values() if p.at_bound]
        if on_bound:
            lines.append(f"  {'':<10} on a bound: {', '.join(on_bound)} (see {cat}/d_profile.png)")
        if res.get("flat"):
            lines.append(f"  {'':<10} WARNING: {res['flat']}")
    return "\n".join(lines)
