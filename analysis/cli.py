"""Command line: `python -m analysis {table,fit,demo,frontier,compare} ...` (`--help` on each).

  table     sweep folder -> one row per point (CSV or Parquet)
  fit       fit a law to a table or sweep folder; writes DIR/fit.json and the plots
  demo      one fit per task category (reasoning, ocr) of a sweep; DIR/<category>/fit.json and DIR/split.png
  frontier  the compute-optimal (N, T) per inference-FLOPs budget from a fit.json (paper or full cost)
  compare   fit several laws to the same data and rank them

This module parses arguments and prints; analysis/report.py writes the files, analysis/plots.py the figures.
Bad input exits with status 2 and a one-line message naming the fix (no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from analysis.collect import collect_sweep, read_table, write_table
from analysis.errors import AnalysisInputError
from vlmscale.errors import command

if TYPE_CHECKING:
    from analysis.fit import FitOptions

EXAMPLES = """examples:
  python -m analysis table outputs/demo/sweep --out outputs/demo/results.csv
  python -m analysis fit outputs/demo/sweep --y-col metrics.error/avg --out outputs/demo/fit
  python -m analysis fit sweeps/reference/li2024_reasoning.csv --y-col accuracy --accuracy --bootstrap 1000 --out out/ref
  python -m analysis frontier out/ref/fit.json --text-tokens 50 --budgets 1e2 1e3 1e4
  python -m analysis demo outputs/demo/sweep --out outputs/demo/fit --bootstrap 200
  python -m analysis frontier outputs/demo/fit/reasoning/fit.json --cost full
  python -m analysis compare sweeps/reference/li2024_reasoning.csv --y-col accuracy --accuracy --laws paper,additive

A bad input exits 2 with one line naming the fix; add --debug to see its traceback.
"""


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------ parsers
def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="results table (.csv/.parquet) or sweep folder of result.json files")
    g = p.add_argument_group(
        "columns (defaults: llm_params | llm_params_b | N,  visual_tokens | T,  metrics.error/avg | error)"
    )
    g.add_argument("--n-col", help="column with the LLM size N (any unit; the fit's A absorbs it)")
    g.add_argument("--t-col", help="column with the number of visual tokens T (or another resource)")
    g.add_argument("--y-col", help="column with the error to fit (or an accuracy, with --accuracy)")
    g.add_argument("--accuracy", action="store_true", help="the y column is an accuracy: fit 1 - y")


def _fit_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fitting")
    g.add_argument(
        "--loss", choices=("lsq", "huber"), default="lsq", help="least squares (default) or Huber (L-BFGS-B)"
    )
    g.add_argument(
        "--huber-delta", type=float, default=1e-3, metavar="D", help="Huber threshold (default 1e-3)"
    )
    g.add_argument(
        "--log-space",
        action="store_true",
        help="residuals log(pred) - log(y) (Chinchilla-style with --loss huber)",
    )
    g.add_argument(
        "--starts",
        type=int,
        default=4,
        metavar="K",
        help="local fits from the K best grid starts (default 4)",
    )
    g.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="K",
        help="K point resamples for 95%% percentile intervals (default 0: Wald)",
    )
    g.add_argument(
        "--ci",
        choices=("wald", "bootstrap", "profile"),
        default="auto",
        help="95%% intervals: wald, bootstrap (needs --bootstrap K) or profile (lmfit conf_interval, "
        "profile likelihood); default: bootstrap with --bootstrap, else wald",
    )
    g.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    g.add_argument(
        "--exclude-outliers",
        type=int,
        default=0,
        metavar="K",
        help="drop the K worst-fitting points, refit, and list them",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar on the bootstrap")


def _law_fit_out_args(p: argparse.ArgumentParser, text_tokens_help: str, no_plots_help: str) -> None:
    """What `fit` and `demo` share: fit one law, then write its files (and plots at Q text tokens) to --out."""
    from analysis.laws import LAWS

    p.add_argument("--law", default="paper", choices=sorted(LAWS), help="law to fit (default paper)")
    _fit_args(p)
    p.add_argument("--text-tokens", type=float, default=50.0, metavar="Q", help=text_tokens_help)
    p.add_argument("--no-plots", action="store_true", help=no_plots_help)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")


def build_parser() -> argparse.ArgumentParser:
    from analysis.laws import LAWS

    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Scaling-law analysis of VLM sweeps: results table, law fits, compute-optimal frontier, plots.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{table,fit,demo,frontier,compare}")

    p = sub.add_parser(
        "table",
        help="sweep folder -> table, one row per point",
        description="Read every result.json under a sweep folder into one table (fields flattened with dots, e.g. "
        "metrics.error/avg). Failed points keep their status; run folders without result.json get status "
        "'missing'; corrupt result.json files are reported by path and skipped.",
    )
    p.add_argument("sweep_dir", help="sweep folder (llm=<name>/T=<T>/seed=<s>/result.json)")
    p.add_argument("--out", help="output .csv or .parquet (default: print CSV to stdout)")
    p.add_argument(
        "--with-config", action="store_true", help="also flatten the resolved config and error tracebacks"
    )

    laws = ", ".join(f"{n} ({law.formula})" for n, law in LAWS.items())
    p = sub.add_parser(
        "fit",
        help="fit a scaling law; writes DIR/fit.json and plots",
        description=f"Fit a scaling law to the points (rows whose status is not 'done' are left out). Laws: {laws}. "
        "Writes DIR/fit.json (params with stderr and CI, bound flags, SSE, RMSE, R^2, AIC, BIC, LOO-RMSE, "
        "extrapolation error, excluded rows, fit time) and PNG+PDF plots: scaling (the paper figure), residuals, "
        "isoflop, d_profile.",
    )
    _data_args(p)
    _law_fit_out_args(p, "Q in FLOPs = 2N(Q+T) for the plots (default 50)", "write fit.json only")

    p = sub.add_parser(
        "demo",
        help="one fit per task category (reasoning, ocr): the paper's split",
        description="Fit the law to each category's error column (metrics.error/<category>) of a sweep, seeds "
        "averaged per (N, T) point by default. Writes DIR/<category>/fit.json (the fit schema), the per-category "
        "plots, DIR/split.png+pdf (the paper figure of all categories side by side), and prints alpha, beta, "
        "the exponent ratio with its interval and the optimal T at Q per category. A category whose errors "
        "hardly move (e.g. OCR at chance) is fitted but flagged with a warning.",
    )
    p.add_argument("data", help="sweep folder of result.json files (or a table with metrics.error/* columns)")
    p.add_argument(
        "--categories", default="reasoning,ocr", help="comma-separated categories (default reasoning,ocr)"
    )
    p.add_argument(
        "--seeds",
        choices=("mean", "all"),
        default="mean",
        help="mean: average the seeds of each (N, T) point before fitting (default); all: every run a point",
    )
    p.add_argument("--n-col", help="column with the LLM size N (default llm_params)")
    p.add_argument("--t-col", help="column with the number of visual tokens T (default visual_tokens)")
    _law_fit_out_args(p, "Q for the optimal T (default 50)", "fit.json files only")

    p = sub.add_parser(
        "frontier",
        help="compute-optimal (N, T) per FLOPs budget from a fit.json",
        description="For each inference-FLOPs budget C = 2N(Q+T), the (N, T) minimising the fitted law's error "
        "within the N and T ranges (default: the data's T range; N from the smallest fitted N to 4x the largest), "
        "and the closed form T* = beta Q/(alpha - beta) of the paper law. Default budgets: 8 log-spaced values "
        "over the budgets where the optimal N can lie inside the N range. Writes frontier_Q<Q>.csv/.json.",
    )
    p.add_argument("fit_json", help="fit.json written by `python -m analysis fit`")
    p.add_argument(
        "--text-tokens",
        type=float,
        default=None,
        metavar="Q",
        help="text tokens Q (default: the fit's, else 50)",
    )
    p.add_argument(
        "--budgets", type=float, nargs="+", metavar="C", help="FLOPs budgets in the units of 2N(Q+T)"
    )
    p.add_argument(
        "--n-budgets", type=int, default=8, metavar="K", help="number of default budgets (default 8)"
    )
    p.add_argument("--n-range", type=float, nargs=2, metavar=("LO", "HI"), help="allowed N range")
    p.add_argument("--t-range", type=float, nargs=2, metavar=("LO", "HI"), help="allowed T range")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the fit.json's folder)")
    p.add_argument("--no-plots", action="store_true", help="no iso-FLOP plot")
    g = p.add_argument_group(
        "cost (--cost full: 2N(Q+T+q) + F + pT; sizes from the fit.json's cost_accounting, which a fit of a "
        "sweep folder records from the runs' flops_breakdown, each overridable here, in units of 2N(Q+T))"
    )
    g.add_argument(
        "--cost",
        choices=("paper", "full"),
        default="paper",
        help="paper: 2N(Q+T); full: also the vision tower, compressor + projector MLP and the QueCC query pass, "
        "with both optima per budget side by side (default paper)",
    )
    g.add_argument("--tower-flops", type=float, metavar="F", help="vision tower FLOPs per image")
    g.add_argument(
        "--compressor-flops", type=float, metavar="F", help="compressor FLOPs per image (fixed part)"
    )
    g.add_argument("--per-token-flops", type=float, metavar="P", help="connector FLOPs per visual token")
    g.add_argument(
        "--query-tokens", type=float, metavar="q", help="tokens of the separate query pass (0: prefix mode)"
    )

    p = sub.add_parser(
        "compare",
        help="fit several laws and rank them",
        description="Fit each law to the same points and rank them (AIC by default); prints the table and, with "
        "--out, writes compare.csv/.md/.json and a table figure.",
    )
    _data_args(p)
    p.add_argument(
        "--laws",
        default="paper,additive",
        help=f"comma-separated laws (default paper,additive; known: {', '.join(sorted(LAWS))})",
    )
    p.add_argument(
        "--rank-by",
        default="aic",
        choices=("aic", "bic", "loo_rmse", "extrap_rmse", "sse"),
        help="ranking metric (default aic)",
    )
    _fit_args(p)
    p.add_argument("--out", metavar="DIR", help="output folder")
    return parser


# ------------------------------------------------------------------------------------------------ commands
def _options(args) -> FitOptions:
    from analysis.fit import FitOptions

    return FitOptions(
        loss=args.loss,
        huber_delta=args.huber_delta,
        log_space=args.log_space,
        n_starts=args.starts,
        bootstrap=args.bootstrap,
        seed=args.seed,
        ci=args.ci,
        exclude_outliers=args.exclude_outliers,
        progress=not args.no_progress,
    )


def _load_points(args):
    from analysis.dataset import prepare

    table, collected = read_table(args.data)
    if collected is not None:
        for path, reason in collected.corrupt:
            _warn(f"skipped unreadable {path}: {reason}")
        defaults = {"n_col": "llm_params", "t_col": "visual_tokens", "y_col": "metrics.error/avg"}
    else:
        defaults = {"n_col": None, "t_col": None, "y_col": None}
    data = prepare(
        table,
        n_col=args.n_col or defaults["n_col"],
        t_col=args.t_col or defaults["t_col"],
        y_col=args.y_col or defaults["y_col"],
        accuracy=args.accuracy,
    )
    if data.left_out:
        _warn(
            "left out rows whose status is not done: "
            + ", ".join(f"{v} {k}" for k, v in data.left_out.items())
        )
    if "acc" in data.y_col.lower() and not args.accuracy:
        _warn(f"'{data.y_col}' looks like an accuracy: add --accuracy to fit the error 1 - {data.y_col}")
    return table, data


def _accounting(table, data):
    """The runs' costs beyond 2N(Q+T) (None for a table without flops_breakdown columns)."""
    from analysis.costs import accounting_from_table

    done = table[table["status"].astype(str) == "done"] if "status" in table.columns else table
    return accounting_from_table(done, data.N) if len(done) == data.n else None


def cmd_table(args) -> int:
    collected = collect_sweep(args.sweep_dir, include_config=args.with_config)
    for path, reason in collected.corrupt:
        _warn(f"skipped unreadable {path}: {reason}")
    if args.out:
        out = write_table(collected.table, args.out)
        print(f"{collected.summary()}\nwrote {out}")
    else:
        collected.table.to_csv(sys.stdout, index=False)
        print(collected.summary(), file=sys.stderr)
    return 0


def cmd_fit(args) -> int:
    from analysis import report
    from analysis.fit import fit_law
    from analysis.frontier import FrontierSpec
    from analysis.laws import get_law

    law = get_law(args.law)
    if args.text_tokens < 0:
        raise AnalysisInputError(f"--text-tokens must be >= 0 (got {args.text_tokens})")
    out = Path(args.out)
    table, data = _load_points(args)
    fit = fit_law(data, law, _options(args), text_tokens=args.text_tokens)
    record = fit.to_dict()
    record["source"] = str(args.data)
    accounting = _accounting(table, data)
    if accounting is not None:
        record["cost_accounting"] = accounting
    spec = FrontierSpec.from_fit(record)
    record["T_closed_form"] = spec.closed_form_t()
    written = report.write_fit(record, out)
    for w in fit.warnings:
        _warn(w)
    print(report.fit_summary(fit))
    if not args.no_plots:
        written += _fit_plots(fit, data, spec, law, out)
    _print_written(written)
    return 0


def _print_written(paths) -> None:
    shown = [str(p) for p in paths if Path(p).suffix != ".pdf"]
    pdfs = " (+ PDFs)" if any(Path(p).suffix == ".pdf" for p in paths) else ""
    print(f"wrote {', '.join(shown)}{pdfs}")


def cmd_demo(args) -> int:
    from analysis import plots, report
    from analysis.categories import fit_categories
    from analysis.laws import get_law

    law = get_law(args.law)
    if args.text_tokens < 0:
        raise AnalysisInputError(f"--text-tokens must be >= 0 (got {args.text_tokens})")
    table, collected = read_table(args.data)
    if collected is not None:
        for path, reason in collected.corrupt:
            _warn(f"skipped unreadable {path}: {reason}")
    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    fits = fit_categories(
        table, categories, law, _options(args), args.text_tokens, args.seeds, args.n_col, args.t_col
    )
    out = Path(args.out)
    written = []
    for cat, cf in fits.items():
        cf.record["source"] = str(args.data)
        written += report.write_fit(cf.record, out / cat)
        for w in cf.fit.warnings:
            _warn(f"[{cat}] {w}")
        print(f"== {cat} ==\n{report.fit_summary(cf.fit)}\n")
        if not args.no_plots:
            written += _fit_plots(cf.fit, cf.data, cf.spec, law, out / cat)
    if not args.no_plots:
        panels = [
            (f"{cat} (flat: exponents meaningless)" if cf.flat else cat, cf.fit, cf.data, cf.spec)
            for cat, cf in fits.items()
        ]
        written += plots.split_figure(panels, out)
    _print_written(written)
    results = {cat: {"fit": cf.fit, "record": cf.record, "flat": cf.flat} for cat, cf in fits.items()}
    print(report.category_summary(results, args.text_tokens))
    return 0


def _fit_plots(fit, data, spec, law, out: Path) -> list[Path]:
    from analysis import plots

    paths = plots.paper_figure(fit, data, spec, out)
    paths += plots.residual_plot(fit, data, out)
    paths += plots.isoflop_plot(spec, out, data=data)
    if fit.d_profile and law.floor and law.exponents:
        paths += plots.d_profile_plot(fit, law.floor, law.exponents, out)
    return paths


def cmd_frontier(args) -> int:
    from analysis import report
    from analysis.costs import cost_model
    from analysis.frontier import FrontierSpec, frontier_both_costs

    path = Path(args.fit_json)
    if not path.is_file():
        raise AnalysisInputError(
            f"{path} is not a file: give the fit.json written by `python -m analysis fit --out DIR`"
        )
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisInputError(
            f"{path} is not valid JSON ({exc}); re-run `python -m analysis fit`"
        ) from None
    spec = FrontierSpec.from_fit(record, args.text_tokens, args.n_range, args.t_range)
    if args.n_budgets < 1:
        raise AnalysisInputError("--n-budgets must be >= 1")
    out = Path(args.out) if args.out else path.parent
    meta = {
        "law": spec.law.name,
        "params": spec.params,
        "text_tokens": spec.text_tokens,
        "n_range": list(spec.n_range),
        "t_range": list(spec.t_range),
        "T_closed_form": spec.closed_form_t(),
        "cost": args.cost,
    }
    if args.cost == "full":
        full = cost_model(
            "full", spec.text_tokens, record.get("cost_accounting"), args.tower_flops, args.compressor_flops,
            args.per_token_flops, args.query_tokens,
        )  # fmt: skip
        budgets = args.budgets if args.budgets else spec.with_cost(full).default_budgets(args.n_budgets)
        table = frontier_both_costs(spec, full, budgets)
        print(report.frontier_costs_table(table, spec.cost.formula(), full.formula()))
        n_bad = int((table["binding_full"] == "infeasible").sum())
        meta["full_cost"] = {k: getattr(full, k) for k in ("fixed", "per_visual_token", "query_tokens")}
        meta["T_closed_form_full"] = spec.with_cost(full).closed_form_t()
        stem = f"frontier_Q{spec.text_tokens:g}_full"
    else:
        budgets = args.budgets if args.budgets else spec.default_budgets(args.n_budgets)
        table = spec.frontier(budgets)
        print(report.frontier_table(table))
        n_bad = int((table["binding"] == "infeasible").sum())
        stem = f"frontier_Q{spec.text_tokens:g}"
    if n_bad:
        _warn(
            f"{n_bad} budgets cannot be met inside the N and T ranges (rows marked infeasible): widen --n-range/--t-range"
        )
    written = report.write_frontier(table, meta, out, stem)
    if not args.no_plots:
        from analysis import plots

        written += plots.isoflop_plot(spec, out, stem=f"isoflop_Q{spec.text_tokens:g}")
        if args.cost == "full":
            n_col = record.get("data", {}).get("n_col", "N")
            written += plots.frontier_costs_plot(
                table, out, stem=f"frontier_costs_Q{spec.text_tokens:g}", n_col=n_col
            )
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def cmd_compare(args) -> int:
    from analysis import report
    from analysis.fit import fit_law
    from analysis.laws import get_law
    from analysis.report import compare_frame, compare_strings

    names = [n.strip() for n in args.laws.split(",") if n.strip()]
    if not names:
        raise AnalysisInputError("--laws is empty: name at least one law, e.g. --laws paper,additive")
    laws = [get_law(n) for n in names]
    _, data = _load_points(args)
    opts = _options(args)
    fits, skipped = {}, {}
    for law in laws:
        try:
            fits[law.name] = fit_law(data, law, opts)
        except AnalysisInputError as exc:
            if len(laws) == 1:
                raise
            skipped[law.name] = str(exc)
            _warn(f"law '{law.name}' skipped: {exc}")
    if not fits:
        raise AnalysisInputError(
            "no law could be fitted: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    for name, f in fits.items():
        for w in f.warnings:
            _warn(f"[{name}] {w}")
    frame = compare_frame(fits, args.rank_by)
    shown = compare_strings(frame)
    print(f"{data.n} points; ranked by {args.rank_by} (lower is better)")
    print(shown.to_string(index=False))
    if args.out:
        from analysis import plots

        out = Path(args.out)
        report.write_compare(frame, shown, fits, {"rank_by": args.rank_by, "skipped": skipped}, out)
        plots.compare_table(shown, out)
        print(f"wrote {out / 'compare.csv'}, compare.md, compare.json, compare.png/.pdf")
    return 0


COMMANDS = {
    "table": cmd_table,
    "fit": cmd_fit,
    "demo": cmd_demo,
    "frontier": cmd_frontier,
    "compare": cmd_compare,
}


@command  # a user error (AnalysisInputError) prints `error: ...` and exits 2; --debug shows its traceback
def main(argv: list[str]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
