"""One fit per task category (`metrics.error/<category>`): the paper's split, reasoning vs OCR, measured.

Each category is fitted on its own with the same law and options. Seeds are averaged per (N, T) point before
the fit (`seeds="mean"`, the default: the paper fits one number per point and the bootstrap then resamples
grid points), or every run is a point (`seeds="all"`). A category whose errors barely move across the grid
(e.g. OCR at chance) is still fitted, but flagged: its exponents describe noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.costs import accounting_from_table
from analysis.dataset import FitData, average_seeds, prepare
from analysis.errors import AnalysisInputError
from analysis.fit import FitOptions, FitResult, fit_law
from analysis.frontier import FrontierSpec
from analysis.laws import Law

SEEDS = ("mean", "all")
#: A category whose errors span less than this (max - min over the grid) is flagged as flat.
FLAT_SPREAD = 0.02


def y_column(category: str) -> str:
    return f"metrics.error/{category}"


@dataclass
class CategoryFit:
    category: str
    data: FitData
    fit: FitResult
    record: dict  # the fit.json content
    spec: FrontierSpec
    flat: str | None  # why the category is flagged as flat, or None


def flat_reason(data: FitData) -> str | None:
    spread = float(data.y.max() - data.y.min())
    if spread >= FLAT_SPREAD:
        return None
    return (
        f"'{data.y_col}' hardly moves over the grid (all {data.y.mean():.3g} +- {spread / 2:.2g}, spread "
        f"{spread:.3g} < {FLAT_SPREAD}): the model is at chance or saturated on this category, so its exponents "
        "and their ratio describe noise, not scaling"
    )


def fit_categories(
    table: pd.DataFrame,
    categories: list[str],
    law: Law,
    opts: FitOptions,
    text_tokens: float,
    seeds: str = "mean",
    n_col: str | None = None,
    t_col: str | None = None,
) -> dict[str, CategoryFit]:
    """Fit `law` to each category's error column of a sweep table."""
    if seeds not in SEEDS:
        raise AnalysisInputError(f"unknown --seeds '{seeds}': choose one of {', '.join(SEEDS)}")
    if not categories:
        raise AnalysisInputError("no categories: name them, e.g. --categories reasoning,ocr")
    missing = [c for c in categories if y_column(c) not in table.columns]
    if missing:
        known = sorted(c.split("/", 1)[1] for c in table.columns if str(c).startswith("metrics.error/"))
        raise AnalysisInputError(
            f"no error column for categories {missing} (looked for {', '.join(y_column(c) for c in missing)}); "
            f"the table has: {', '.join(known) or 'no metrics.error/* columns'}"
        )
    done = table[table["status"].astype(str) == "done"] if "status" in table.columns else table
    out: dict[str, CategoryFit] = {}
    for cat in categories:
        data = prepare(table, n_col=n_col, t_col=t_col, y_col=y_column(cat))
        points = average_seeds(data) if seeds == "mean" else data
        fit = fit_law(points, law, opts, text_tokens=text_tokens)
        record = fit.to_dict()
        record["category"] = cat
        record["seeds"] = seeds
        record["n_runs"] = int(data.n)
        accounting = accounting_from_table(done, pd.to_numeric(done[data.n_col]).to_numpy(float))
        if accounting is not None:
            record["cost_accounting"] = accounting
        spec = FrontierSpec.from_fit(record)
        record["T_closed_form"] = spec.closed_form_t()
        flat = flat_reason(points)
        if flat:
            fit.warnings.append(flat)
            record["warnings"] = list(fit.warnings)
        out[cat] = CategoryFit(cat, points, fit, record, spec, flat)
    return out
