"""Table -> the (N, T, y) points a law is fitted to, with every check a user can act on.

Rows whose `status` is not `done` are left out and counted; accuracy turns into error with `accuracy=True`.
Bad input (missing column, NaN/inf, non-positive N or T, too few points, a single N or T value, negative
error for a law whose floor is >= 0) raises AnalysisInputError naming the column or rows and the fix.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.errors import AnalysisInputError
from analysis.laws import Law

#: Column defaults, tried in order when the user names none (sweep-folder names first).
DEFAULT_N_COLS = ("llm_params", "llm_params_b", "N")
DEFAULT_T_COLS = ("visual_tokens", "T")
DEFAULT_Y_COLS = ("metrics.error/avg", "error")


@dataclass
class FitData:
    """The points of a fit. `rows` are the row labels of the source table (for reporting)."""

    N: np.ndarray
    T: np.ndarray
    y: np.ndarray
    rows: np.ndarray
    n_col: str = "N"
    t_col: str = "T"
    y_col: str = "y"
    accuracy: bool = False
    left_out: dict[str, int] = field(default_factory=dict)  # status -> rows left out

    @property
    def n(self) -> int:
        return len(self.y)

    def subset(self, mask_or_index) -> FitData:
        return FitData(
            self.N[mask_or_index],
            self.T[mask_or_index],
            self.y[mask_or_index],
            self.rows[mask_or_index],
            self.n_col,
            self.t_col,
            self.y_col,
            self.accuracy,
            dict(self.left_out),
        )

    def describe(self) -> dict:
        return {
            "n_col": self.n_col,
            "t_col": self.t_col,
            "y_col": self.y_col,
            "accuracy": self.accuracy,
            "n_points": self.n,
            "N_values": sorted({float(v) for v in self.N}),
            "T_values": sorted({float(v) for v in self.T}),
            "n_min": float(self.N.min()),
            "n_max": float(self.N.max()),
            "t_min": float(self.T.min()),
            "t_max": float(self.T.max()),
            "y_min": float(self.y.min()),
            "y_max": float(self.y.max()),
            "left_out": dict(self.left_out),
        }


def _pick(table: pd.DataFrame, given: str | None, defaults: tuple[str, ...], flag: str, what: str) -> str:
    if given is not None:
        if given in table.columns:
            return given
        close = difflib.get_close_matches(given, [str(c) for c in table.columns], n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise AnalysisInputError(
            f"column '{given}' ({what}) is not in the table{hint}; choose one with {flag} "
            f"from: {', '.join(map(str, table.columns))}"
        )
    for name in defaults:
        if name in table.columns:
            return name
    raise AnalysisInputError(
        f"no {what} column: none of {', '.join(repr(d) for d in defaults)} is in the table; name it with "
        f"{flag} (columns: {', '.join(map(str, table.columns))})"
    )


def prepare(
    table: pd.DataFrame,
    n_col: str | None = None,
    t_col: str | None = None,
    y_col: str | None = None,
    accuracy: bool = False,
) -> FitData:
    """Select the fit columns, keep `status == done` rows (when there is a status column), check values."""
    left_out: dict[str, int] = {}
    if "status" in table.columns:
        status = table["status"].astype(str)
        keep = status == "done"
        left_out = {str(k): int(v) for k, v in status[~keep].value_counts().items()}
        table = table[keep]
        if table.empty:
            detail = ", ".join(f"{v} {k}" for k, v in left_out.items())
            raise AnalysisInputError(
                f"no rows with status 'done' ({detail}): nothing to fit; finish or re-run the sweep's points"
            )
    n_col = _pick(table, n_col, DEFAULT_N_COLS, "--n-col", "model size N")
    t_col = _pick(table, t_col, DEFAULT_T_COLS, "--t-col", "visual tokens T")
    y_col = _pick(table, y_col, DEFAULT_Y_COLS, "--y-col", "error y")
    # Rows are named by their run folder when the table came from a sweep, else by their row number.
    labels = table["path"].astype(str).to_numpy() if "path" in table.columns else table.index.to_numpy()
    values = {}
    for col, flag in ((n_col, "--n-col"), (t_col, "--t-col"), (y_col, "--y-col")):
        column = pd.to_numeric(table[col], errors="coerce")
        bad_text = column.isna() & table[col].notna()
        if bad_text.any():
            raise AnalysisInputError(
                f"column '{col}' has non-numeric values in rows {_rows(labels[bad_text.to_numpy()])}: "
                f"fix those rows or choose another column with {flag}"
            )
        arr = column.to_numpy(dtype=float)
        bad = ~np.isfinite(arr)
        if bad.any():
            raise AnalysisInputError(
                f"column '{col}' has NaN/inf in rows {_rows(labels[bad])}: fix or drop those rows "
                "(a sweep's failed runs are left out by their status, not by NaN)"
            )
        values[col] = arr
    N, T, y = values[n_col], values[t_col], values[y_col]
    for arr, col, what in ((N, n_col, "model sizes"), (T, t_col, "token counts")):
        if (arr <= 0).any():
            raise AnalysisInputError(
                f"column '{col}' has values <= 0 in rows {_rows(labels[arr <= 0])}: {what} enter a power "
                "law and must be positive; fix those rows"
            )
    if accuracy:
        y = 1.0 - y
    return FitData(N, T, y, labels, n_col, t_col, y_col, accuracy, left_out)


def average_seeds(data: FitData) -> FitData:
    """One point per (N, T): the mean error over the seeds (rows named `N=..,T=.. (k seeds)`)."""
    keys = np.stack([data.N, data.T], axis=1)
    uniq, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    y = np.bincount(inverse, weights=data.y) / counts
    rows = np.array([f"N={n:g},T={t:g} ({c} seeds)" for (n, t), c in zip(uniq, counts)])
    return FitData(
        uniq[:, 0].copy(), uniq[:, 1].copy(), y, rows, data.n_col, data.t_col, data.y_col, data.accuracy,
        dict(data.left_out),
    )  # fmt: skip


def validate_for_law(data: FitData, law: Law, log_space: bool = False) -> None:
    """Checks that depend on the law: enough points, at least two N and two T values, sign of y."""
    need = law.n_params + 1
    if data.n < need:
        raise AnalysisInputError(
            f"{data.n} points for the '{law.name}' law with {law.n_params} parameters: at least {need} are "
            "needed (parameters + 1); add grid points or choose a law with fewer parameters"
        )
    for arr, col, axis in ((data.N, data.n_col, "LLM sizes"), (data.T, data.t_col, "visual-token counts")):
        distinct = np.unique(arr)
        if len(distinct) < 2:
            raise AnalysisInputError(
                f"only one value of '{col}' ({distinct[0]:g}): the exponent of that axis cannot be fitted; "
                f"add runs with other {axis} (or name another column)"
            )
    if law.floor is not None and (data.y < 0).any():
        what = f"1 - '{data.y_col}'" if data.accuracy else f"'{data.y_col}'"
        hint = (
            "the column does not look like an accuracy in [0, 1]"
            if data.accuracy
            else f"if '{data.y_col}' is an accuracy, add --accuracy; otherwise choose an error column with --y-col"
        )
        raise AnalysisInputError(
            f"negative error ({what} min {data.y.min():.4g}, rows {_rows(data.rows[data.y < 0])}): the "
            f"'{law.name}' law models an error >= 0; {hint}"
        )
    if log_space and (data.y <= 0).any():
        raise AnalysisInputError(
            f"--log-space needs y > 0 but rows {_rows(data.rows[data.y <= 0])} have y <= 0: drop --log-space "
            "or fix those rows"
        )


def _rows(index) -> str:
    index = list(index)
    shown = ", ".join(str(i) for i in index[:8])
    return f"[{shown}{', ...' if len(index) > 8 else ''}]"
