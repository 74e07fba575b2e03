"""The frontier under the paper's count and the full count (tower, connector, query pass), by hand."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.costs import CostModel, accounting_from_table, cost_model
from analysis.errors import AnalysisInputError
from analysis.frontier import FrontierSpec, frontier_both_costs
from analysis.laws import PAPER
from tests.analysis import conftest

PARAMS = {"A": 1.0, "alpha": 0.3, "beta": 0.1, "D": 0.0}


def _spec(Q=50.0):
    return FrontierSpec(PAPER, dict(PARAMS), Q, (1e3, 1e9), (1.0, 1000.0))


def test_full_cost_optimum_by_hand():
    """Q = 50, query pass q = 30, fixed F = 1e6, no per-token cost.

    paper: T* = beta Q / (alpha - beta) = 0.1 * 50 / 0.2 = 25,  N = C / (2 (50 + 25))
    full:  T* = beta (Q + q) / (alpha - beta) = 0.1 * 80 / 0.2 = 40,  N = (C - F) / (2 (50 + 30 + 40))
    """
    full = CostModel(50.0, fixed=1e6, query_tokens=30.0, name="full")
    table = frontier_both_costs(_spec(), full, [1e8, 1e10])
    assert table.T_opt_paper.to_numpy() == pytest.approx([25, 25], rel=1e-5)
    assert table.T_opt_full.to_numpy() == pytest.approx([40, 40], rel=1e-5)
    assert table.N_opt_paper.to_numpy() == pytest.approx([1e8 / 150, 1e10 / 150], rel=1e-5)
    assert table.N_opt_full.to_numpy() == pytest.approx([(1e8 - 1e6) / 240, (1e10 - 1e6) / 240], rel=1e-5)
    # What the paper count's choice really costs: 2 N (Q + T + q) + F at N = C / 150, T = 25.
    assert table.paper_choice_full_flops[0] == pytest.approx(2 * (1e8 / 150) * 105 + 1e6, rel=1e-5)
    assert table.T_closed_form_full[0] == pytest.approx(40)
    err_full = PARAMS["A"] / ((99e6 / 240) ** 0.3 * 40**0.1)
    assert table.error_pred_full[0] == pytest.approx(err_full, rel=1e-6)


def test_per_token_cost_shifts_the_optimum_to_fewer_tokens():
    spec = _spec()
    base = spec.with_cost(CostModel(50.0, name="full")).optimum(1e9)
    costly = spec.with_cost(CostModel(50.0, per_visual_token=1e6, name="full"))
    assert costly.closed_form_t() is None
    opt = costly.optimum(1e9)
    assert opt["T_opt"] < base["T_opt"]
    assert 2 * opt["N_opt"] * (50 + opt["T_opt"]) + 1e6 * opt["T_opt"] == pytest.approx(1e9, rel=1e-9)
    # A budget the tower alone exceeds is infeasible, not an error.
    tower_only = spec.with_cost(CostModel(50.0, fixed=1e12, name="full"))
    assert tower_only.optimum(1e9)["binding"] == "infeasible"


def test_accounting_from_runs_recovers_the_fixture_sizes(sweep_dir):
    from analysis.collect import collect_sweep

    table = collect_sweep(sweep_dir).table
    done = table[table.status == "done"]
    acc = accounting_from_table(done, done.llm_params.to_numpy(float))
    assert acc["vision_tower"] == pytest.approx(conftest.TOWER_FLOPS)
    assert acc["fixed"] == pytest.approx(conftest.TOWER_FLOPS + conftest.CONNECTOR_FIXED)
    assert acc["per_visual_token"] == pytest.approx(conftest.CONNECTOR_PER_TOKEN)
    assert acc["query_tokens"] == pytest.approx(conftest.QUERY_TOKENS)
    assert accounting_from_table(done.drop(columns=["flops_breakdown.query_pass"]), done.llm_params) is None


def test_command_line_sizes_override_and_missing_sizes_explain():
    acc = {"fixed": 5.0, "vision_tower": 3.0, "per_visual_token": 1.0, "query_tokens": 7.0}
    model = cost_model("full", 50, acc, tower_flops=10.0, query_tokens=0.0)
    assert (model.fixed, model.per_visual_token, model.query_tokens) == (12.0, 1.0, 0.0)
    with pytest.raises(AnalysisInputError, match="--tower-flops"):
        cost_model("full", 50, None)
    with pytest.raises(AnalysisInputError, match="--query-tokens"):
        cost_model("full", 50, None, query_tokens=-1.0)


def test_frontier_cli_full_cost_from_the_runs(sweep_dir, tmp_path, capsys):
    out = tmp_path / "fit"
    assert main(["fit", str(sweep_dir), "--no-plots", "--out", str(out)]) == 0
    record = json.loads((out / "fit.json").read_text())
    assert record["cost_accounting"]["query_tokens"] == pytest.approx(conftest.QUERY_TOKENS)
    capsys.readouterr()
    assert main(["frontier", str(out / "fit.json"), "--cost", "full", "--text-tokens", "50"]) == 0
    printed = capsys.readouterr().out
    assert "paper: 2N(Q+T), Q = 50" in printed and "full:  2N(Q+T+q) + F + pT" in printed
    table = pd.read_csv(out / "frontier_Q50_full.csv")
    feasible = table[table.binding_full != "infeasible"]
    assert len(feasible) and (feasible.paper_choice_full_flops > feasible.budget).all()
    real = 2 * feasible.N_opt_full * (50 + feasible.T_opt_full + conftest.QUERY_TOKENS)
    real += (
        conftest.TOWER_FLOPS + conftest.CONNECTOR_FIXED + conftest.CONNECTOR_PER_TOKEN * feasible.T_opt_full
    )
    assert np.allclose(real, feasible.budget, rtol=1e-6)
    for ext in ("png", "pdf"):
        assert (out / f"frontier_costs_Q50.{ext}").stat().st_size > 1000
    meta = json.loads((out / "frontier_Q50_full.json").read_text())
    assert meta["cost"] == "full" and meta["full_cost"]["query_tokens"] == pytest.approx(
        conftest.QUERY_TOKENS
    )


def test_frontier_cli_full_cost_needs_sizes(reference_csv, tmp_path, capsys):
    out = tmp_path / "ref"
    argv = ["fit", str(reference_csv), "--y-col", "accuracy", "--accuracy", "--no-plots", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["frontier", str(out / "fit.json"), "--cost", "full", "--no-plots"]) == 2
    assert "--tower-flops" in capsys.readouterr().err
    # Sizes in the fit's units (N in billions): a 0.3B-equivalent tower, a 32-token query pass.
    argv = [
        "frontier",
        str(out / "fit.json"),
        "--cost",
        "full",
        "--tower-flops",
        "0.6",
        "--query-tokens",
        "32",
    ]
    assert main(argv + ["--budgets", "1000", "--no-plots"]) == 0
    table = pd.read_csv(out / "frontier_Q50_full.csv")
    # beta (Q + q) / (alpha - beta) with the exponents fit.json holds (the fit itself is checked against an
    # independent solver in test_reference.py): Q = 50 text tokens, q = 32 query tokens
    params = json.loads((out / "fit.json").read_text())["params"]
    alpha, beta = params["alpha"]["value"], params["beta"]["value"]
    assert table.T_opt_full[0] == pytest.approx(beta * (50 + 32) / (alpha - beta), rel=1e-3)
