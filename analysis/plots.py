"""Publication figures (PNG + PDF), drawn on matplotlib Figure objects (no pyplot, no display needed).

paper_figure   error vs inference FLOPs (log x), a colour per N (colour bar), marker size by T, the fitted
               curve of each N, the compute-optimal (Pareto) line, the exponents with their intervals.
residual_plot  residuals against T and against N.
isoflop_plot   predicted error along fixed FLOPs budgets as T varies, with each budget's optimum.
d_profile_plot the exponents and the SSE with the floor (D) held on a grid.
compare_table  the law-comparison table as a figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.colors import LinearSegmentedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.dataset import FitData
from analysis.fit import FitResult
from analysis.frontier import FrontierSpec, inference_flops

STYLE = {
    "font.size": 10,
    "axes.labelsize": 11,
    "axes.titlesize": 11,
    "legend.fontsize": 8.5,
    "legend.title_fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linestyle": ":",
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,
}
_GREEK = {"alpha": r"\alpha", "beta": r"\beta"}
#: y span (each side) shown for data whose errors hardly move, so the axis does not zoom into noise.
FLAT_YSPAN = 0.05


def _cmap(name: str, lo: float = 0.0, hi: float = 0.85):
    base = matplotlib.colormaps[name]
    return LinearSegmentedColormap.from_list(f"{name}_trunc", base(np.linspace(lo, hi, 256)))


def _norm(values: np.ndarray):
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi <= lo:
        return Normalize(lo - 0.5, hi + 0.5)
    return LogNorm(lo, hi) if hi / lo > 3 else Normalize(lo, hi)


def fmt_size(x: float, col: str = "") -> str:
    """0.5 -> '0.5B' for a column in billions; 1.2e6 -> '1.2M' for a raw count."""
    if col.endswith("_b"):
        return f"{x:g}B"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:g}"


def _sym(name: str) -> str:
    if "/" in name:
        return "/".join(_sym(n) for n in name.split("/"))
    base, _, sub = name.partition("_")
    return _GREEK.get(base, base) + (f"_{{{sub}}}" if sub else "")


def _param_label(name: str, value: float, lo, hi, digits: int = 3) -> str:
    text = f"${_sym(name)} = {value:.{digits}g}$"
    if lo is not None and hi is not None:
        text += f"  [{lo:.{digits}g}, {hi:.{digits}g}]"
    return text


def save(fig: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=200)
    fig.savefig(paths[1])
    return paths


def _y_label(data: FitData) -> str:
    return f"error  (1 − {data.y_col})" if data.accuracy else f"error  ({data.y_col})"


def _value_ticks(ax, values: np.ndarray, col: str = "", max_ticks: int = 8) -> None:
    """Major ticks at the measured values (log axes over a narrow range otherwise label badly)."""
    if len(values) > max_ticks:
        values = values[np.unique(np.linspace(0, len(values) - 1, max_ticks).round().astype(int))]
    ax.set_xticks(values)
    ax.set_xticklabels([fmt_size(v, col) for v in values])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _t_sizes(T: np.ndarray, t_min: float, t_max: float) -> np.ndarray:
    if t_max <= t_min:
        return np.full_like(T, 60.0, dtype=float)
    return 18 + 170 * (np.log(T) - np.log(t_min)) / (np.log(t_max) - np.log(t_min))


# ------------------------------------------------------------------------------------------- paper figure
def paper_figure(
    fit: FitResult, data: FitData, spec: FrontierSpec, out_dir, stem: str = "scaling"
) -> list[Path]:
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.4, 5.0))
        _scaling_axes(fig, fig.add_subplot(), fit, data, spec, f"{fit.law} law: {spec.law.latex}")
        return save(fig, out_dir, stem)


def split_figure(
    panels: list[tuple[str, FitResult, FitData, FrontierSpec]], out_dir, stem: str = "split"
) -> list[Path]:
    """The paper figure of several categories side by side (one panel each, titled by category)."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.4 * len(panels), 5.0))
        axes = np.atleast_1d(fig.subplots(1, len(panels)))
        for ax, (title, fit, data, spec) in zip(axes, panels):
            _scaling_axes(fig, ax, fit, data, spec, f"{title}: {spec.law.latex}")
        return save(fig, out_dir, stem)


def _scaling_axes(fig: Figure, ax, fit: FitResult, data: FitData, spec: FrontierSpec, title: str) -> None:
    """Error vs inference FLOPs: points coloured by N and sized by T, fitted curves, compute-optimal line."""
    Q = spec.text_tokens
    n_values = np.unique(data.N)
    t_min, t_max = float(data.T.min()), float(data.T.max())
    cmap, norm = _cmap("plasma", 0.0, 0.82), _norm(n_values)
    # Fitted curve of each N across the T range, then the measured points on top.
    t_dense = np.geomspace(t_min, t_max, 200)
    for n in n_values:
        ax.plot(
            inference_flops(n, t_dense, Q),
            spec.predict(n, t_dense),
            color=cmap(norm(n)),
            lw=1.6,
            alpha=0.9,
            zorder=2,
        )
    ax.scatter(
        inference_flops(data.N, data.T, Q), data.y, s=_t_sizes(data.T, t_min, t_max), c=cmap(norm(data.N)),
        edgecolors="0.15", linewidths=0.5, zorder=3,
    )  # fmt: skip
    # Pareto line: the compute-optimal error across the plotted budgets.
    x_all = inference_flops(data.N, data.T, Q)
    budgets = np.geomspace(x_all.min(), x_all.max(), 160)
    front = spec.frontier(budgets)
    front = front[front["binding"] != "infeasible"]
    n_top = float(data.N.max())
    inside = front["N_opt"] <= n_top * (1 + 1e-9)
    (pareto,) = ax.plot(
        front["budget"].where(inside),
        front["error_pred"].where(inside),
        color="black",
        ls="--",
        lw=1.6,
        zorder=4,
    )
    beyond = None
    if (~inside).any():
        # Continue the line where the optimum needs a larger LLM than any measured one (an extrapolation).
        first = max(int(np.argmax(~inside.to_numpy())) - 1, 0)
        tail = front.iloc[first:]
        (beyond,) = ax.plot(tail["budget"], tail["error_pred"], color="0.35", ls=":", lw=1.6, zorder=4)
    ax.set_xscale("log")
    mid, spread = float(data.y.mean()), float(np.ptp(data.y))
    if spread < FLAT_YSPAN:  # a flat category: show it flat instead of zooming into noise
        ax.set_ylim(mid - FLAT_YSPAN, mid + FLAT_YSPAN)
        ax.yaxis.get_major_formatter().set_useOffset(False)
    ax.set_xlabel(f"inference FLOPs  $2N(Q+T)$,  Q = {Q:g} text tokens")
    ax.set_ylabel(_y_label(data))
    ax.set_title(title, loc="left")
    # Legends: the fitted exponents (with 95% intervals) + Pareto line, and marker size per T.
    handles = []
    names = list(spec.law.exponents or ()) + list(fit.derived)
    for name in names:
        est = fit.params.get(name)
        if est is not None:
            label = _param_label(name, est.value, est.ci_low, est.ci_high)
        else:
            d = fit.derived[name]
            label = _param_label(name, d["value"], d["ci_low"], d["ci_high"])
        handles.append(Line2D([], [], ls="none", label=label))
    pareto.set_label("compute-optimal frontier")
    handles.append(pareto)
    if beyond is not None:
        beyond.set_label(f"extrapolated, N > {fmt_size(n_top, data.n_col)}")
        handles.append(beyond)
    method = {"wald": "Wald", "bootstrap": "bootstrap", "profile": "profile"}.get(
        fit.ci_method, fit.ci_method
    )
    leg1 = ax.legend(
        handles=handles,
        loc="upper right",
        title=f"fit, 95% {method} CI",
        handlelength=1.6,
        frameon=True,
        framealpha=0.9,
    )
    ax.add_artist(leg1)
    t_values = np.unique(data.T)
    if len(t_values) > 8:
        t_values = t_values[np.unique(np.linspace(0, len(t_values) - 1, 8).round().astype(int))]
    size_handles = [
        ax.scatter([], [], s=float(_t_sizes(np.array([t]), t_min, t_max)[0]), color="0.6", edgecolors="0.15", linewidths=0.5, label=f"{t:g}")
        for t in t_values
    ]  # fmt: skip
    ax.legend(
        handles=size_handles,
        loc="lower left",
        title="visual tokens T",
        ncol=2 if len(t_values) > 4 else 1,
        framealpha=0.9,
    )
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    cbar = fig.colorbar(sm, ax=ax, pad=0.02)
    cbar.set_label(f"LLM parameters N  ({data.n_col})")
    cbar.set_ticks(n_values if len(n_values) <= 10 else n_values[:: int(np.ceil(len(n_values) / 10))])
    cbar.set_ticklabels([fmt_size(v, data.n_col) for v in cbar.get_ticks()])
    cbar.ax.minorticks_off()


# ------------------------------------------------------------------------------------------------ residuals
def residual_plot(fit: FitResult, data: FitData, out_dir, stem: str = "residuals") -> list[Path]:
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10.0, 3.8))
        axes = fig.subplots(1, 2, sharey=True)
        res = np.asarray(fit.residuals)
        rmse = fit.rmse
        n_cmap, n_norm = _cmap("plasma", 0.0, 0.82), _norm(data.N)
        t_cmap, t_norm = _cmap("viridis", 0.0, 0.9), _norm(data.T)
        for ax, x, other, cmap, norm, xlabel, clabel, col in (
            (axes[0], data.T, data.N, n_cmap, n_norm, f"visual tokens T  ({data.t_col})", "N", data.n_col),
            (axes[1], data.N, data.T, t_cmap, t_norm, f"LLM parameters N  ({data.n_col})", "T", data.t_col),
        ):
            ax.axhspan(-rmse, rmse, color="0.85", alpha=0.6, lw=0)
            ax.axhline(0, color="0.3", lw=0.8)
            for v in np.unique(other):
                m = other == v
                order = np.argsort(x[m])
                ax.plot(x[m][order], res[m][order], color=cmap(norm(v)), lw=0.8, alpha=0.6)
            ax.scatter(x, res, c=cmap(norm(other)), s=28, edgecolors="0.15", linewidths=0.4, zorder=3)
            ax.set_xscale("log")
            _value_ticks(ax, np.unique(x), col=data.n_col if x is data.N else "")
            ax.set_xlabel(xlabel)
            sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
            cbar = fig.colorbar(sm, ax=ax, pad=0.02)
            cbar.set_label(clabel)
            vals = np.unique(other)
            cbar.set_ticks(vals if len(vals) <= 8 else vals[:: int(np.ceil(len(vals) / 8))])
            cbar.set_ticklabels([fmt_size(v, col) for v in cbar.get_ticks()])
            cbar.ax.minorticks_off()
        axes[0].set_ylabel("residual  y − fit")
        fig.suptitle(
            f"{fit.law} law residuals: SSE {fit.sse:.3g}, RMSE {rmse:.3g}, $R^2$ {fit.r2:.3f}  (grey band: ±RMSE)",
            x=0.01, ha="left", fontsize=11,
        )  # fmt: skip
        return save(fig, out_dir, stem)


# ------------------------------------------------------------------------------------------------- iso-FLOP
def isoflop_plot(
    spec: FrontierSpec, out_dir, stem: str = "isoflop", data: FitData | None = None, k: int = 6
) -> list[Path]:
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.0, 4.6))
        ax = fig.add_subplot()
        budgets = spec.default_budgets(k)
        cmap, norm = _cmap("viridis", 0.0, 0.88), _norm(budgets)
        Q = spec.text_tokens
        (n_lo, n_hi), (t_lo, t_hi) = spec.n_range, spec.t_range
        for b in budgets:
            lo, hi = max(t_lo, b / (2 * n_hi) - Q), min(t_hi, b / (2 * n_lo) - Q)
            if not hi > lo:
                continue
            t = np.geomspace(max(lo, 1e-9), hi, 300)
            ax.plot(t, spec.predict(b / (2 * (Q + t)), t), color=cmap(norm(b)), lw=1.7)
            opt = spec.optimum(b)
            ax.scatter(
                [opt["T_opt"]],
                [opt["error_pred"]],
                marker="*",
                s=120,
                color=cmap(norm(b)),
                edgecolors="black",
                linewidths=0.6,
                zorder=4,
            )
        handles = [
            Line2D(
                [],
                [],
                marker="*",
                ls="none",
                color="0.5",
                markeredgecolor="black",
                markersize=10,
                label="optimum per budget",
            )
        ]
        t_star = spec.closed_form_t()
        if t_star is not None and t_lo <= t_star <= t_hi:
            ax.axvline(t_star, color="black", ls="--", lw=1.0)
            handles.append(
                Line2D(
                    [], [], color="black", ls="--", label=f"$T^* = \\beta Q/(\\alpha-\\beta) = {t_star:.3g}$"
                )
            )
        ax.set_xscale("log")
        ax.set_xlabel("visual tokens T")
        ax.set_ylabel("predicted error")
        ax.set_title(f"iso-FLOP curves ({spec.law.name} law, Q = {Q:g}; N = C / 2(Q+T))", loc="left")
        ax.legend(handles=handles, loc="best", framealpha=0.9)
        sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
        cbar = fig.colorbar(sm, ax=ax, pad=0.02)
        cbar.set_label("inference FLOPs budget C")
        return save(fig, out_dir, stem)


# ---------------------------------------------------------------------------------------------- D-profile
def d_profile_plot(
    fit: FitResult, law_floor: str, exponents: tuple[str, str], out_dir, stem: str = "d_profile"
) -> list[Path]:
    """`exponents`: the law's exponent names; the ratio is read under the fit's `ratio_name`."""
    prof = fit.d_profile or []
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11.0, 3.4))
        axes = fig.subplots(1, 3)
        d = np.array([row[law_floor] for row in prof])
        ratio_name = fit.ratio_name or f"{exponents[0]}/{exponents[1]}"
        a, b = exponents
        axes[0].plot(d, [row[a] for row in prof], "o-", ms=3, label=f"${_sym(a)}$", color="C3")
        axes[0].plot(d, [row[b] for row in prof], "s-", ms=3, label=f"${_sym(b)}$", color="C0")
        axes[0].set_ylabel("exponent")
        axes[0].legend()
        axes[1].plot(d, [row.get(ratio_name, np.nan) for row in prof], "o-", ms=3, color="C2")
        axes[1].set_ylabel(f"${_sym(ratio_name)}$")
        axes[2].plot(d, [row["sse"] for row in prof], "o-", ms=3, color="0.3")
        axes[2].set_ylabel("SSE")
        fitted = fit.params[law_floor].value
        for ax in axes:
            ax.axvline(fitted, color="black", ls=":", lw=1.0)
            ax.set_xlabel(f"{law_floor} held fixed")
        fig.suptitle(
            f"profile of the floor {law_floor} ({fit.law} law); dotted: fitted {law_floor} = {fitted:.3g}",
            x=0.01,
            ha="left",
            fontsize=11,
        )
        fig.tight_layout()
        return save(fig, out_dir, stem)


# ------------------------------------------------------------------------------------------- compare table
def compare_table(table, out_dir, stem: str = "compare") -> list[Path]:
    """`table`: a DataFrame of formatted strings (one row per law, best first)."""
    with matplotlib.rc_context(STYLE):
        n_rows, n_cols = table.shape
        fig = Figure(figsize=(max(6.0, 1.05 * n_cols + 1.5), 0.42 * (n_rows + 1) + 0.5))
        ax = fig.add_subplot()
        ax.axis("off")
        tab = ax.table(cellText=table.values, colLabels=list(table.columns), loc="center", cellLoc="center")
        tab.auto_set_font_size(False)
        tab.set_fontsize(9)
        tab.scale(1.0, 1.35)
        for (r, _c), cell in tab.get_celld().items():
            cell.set_edgecolor("0.75")
            if r == 0:
                cell.set_facecolor("0.9")
                cell.set_text_props(weight="bold")
            elif r == 1:
                cell.set_facecolor("#e8f4e8")
        ax.set_title("scaling-law comparison (best first)", loc="left")
        return save(fig, out_dir, stem)


# ---------------------------------------------------------------------------------------- frontier by cost
def frontier_costs_plot(table, out_dir, stem: str = "frontier_costs", n_col: str = "N") -> list[Path]:
    """Optimal T and N per budget of real FLOPs, under the paper's count and under the full count."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10.5, 3.9))
        axes = fig.subplots(1, 2)
        styles = {"paper": dict(color="C0", ls="--", label="paper count 2N(Q+T)"),
                  "full": dict(color="C3", ls="-", label="full count (tower, connector, query pass)")}  # fmt: skip
        for tag, style in styles.items():
            bound = table[f"binding_{tag}"].notna().to_numpy()
            for ax, col in ((axes[0], f"T_opt_{tag}"), (axes[1], f"N_opt_{tag}")):
                ax.plot(table["budget"], table[col], marker="o", ms=3.5, lw=1.6, **style)
                # Hollow rings: the optimum sits on an N or T bound (the law's optimum lies outside the range).
                ax.scatter(table["budget"][bound], table[col][bound], s=70, facecolors="none",
                           edgecolors=style["color"], linewidths=1.2, zorder=4)  # fmt: skip
        axes[0].scatter([], [], s=70, facecolors="none", edgecolors="0.3", label="on an N or T bound")
        axes[0].set_ylabel("optimal visual tokens T")
        axes[1].set_ylabel(f"optimal LLM size N  ({n_col})")
        axes[1].set_yscale("log")
        for ax in axes:
            ax.set_xscale("log")
            ax.set_xlabel("inference budget (real FLOPs per image)")
        axes[0].legend(loc="best", framealpha=0.9)
        q = table["text_tokens"].iloc[0] if len(table) else float("nan")
        fig.suptitle(
            f"compute-optimal (N, T) under two cost counts, Q = {q:g}", x=0.01, ha="left", fontsize=11
        )
        fig.tight_layout()
        return save(fig, out_dir, stem)
