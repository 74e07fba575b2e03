"""Every benchmark runs as documented from a fresh clone: `python -m benchmarks.<name>` from the repository root
with nothing set by hand (no PYTHONPATH), answers --help, and answers a bad argument value with exit 2, its
message and no traceback. The benchmarks are discovered, so a new one is checked without editing this file."""

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def fresh_clone_env() -> dict[str, str]:
    """This environment as a new user's shell has it: no PYTHONPATH pointing at the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def run_benchmark(name: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"benchmarks.{name}", *args]
    return subprocess.run(cmd, cwd=ROOT, env=fresh_clone_env(), capture_output=True, text=True, timeout=300)


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def parser_of(name: str, monkeypatch) -> argparse.ArgumentParser:
    """The benchmark's argument parser, caught where its main() parses (nothing else of main runs)."""

    def catch(self, *args, **kwargs):
        raise _Parsed(self)

    module = importlib.import_module(f"benchmarks.{name}")
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", catch)
    monkeypatch.setattr(sys, "argv", [name])
    with pytest.raises(_Parsed) as caught:
        module.main()
    return caught.value.parser


def bad_value(parser: argparse.ArgumentParser) -> tuple[str, str]:
    """An option and a value the parser must refuse: not a number for a numeric option, not one of the choices
    for an option with choices; else an option that does not exist."""
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or action.nargs == 0:
            continue
        if (
            action.type in (int, float)
            or action.choices
            or getattr(action.type, "__qualname__", "").startswith("int_at_least")
        ):
            return action.option_strings[-1], "not-a-valid-value"
    return "--no-such-option", "1"


def test_the_benchmarks_are_found():
    assert {"fit_speed", "prefill", "query_pass", "quecc_speed"} <= set(BENCHMARKS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_help_from_a_fresh_clone(name):
    proc = run_benchmark(name, "--help")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("usage:") and "--help" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_bad_argument_value_is_an_answer(name, monkeypatch):
    option, value = bad_value(parser_of(name, monkeypatch))
    proc = run_benchmark(name, option, value)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert option in proc.stderr and "error:" in proc.stderr


def test_a_user_error_past_the_parser_is_an_answer_too():
    """Values argparse cannot check (a device this machine lacks) exit 2 the same way; --debug shows where."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = run_benchmark("prefill", "--tiny", "--device", "cuda")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --device cuda: no CUDA device on this machine; use --device cpu"
    debug = run_benchmark("prefill", "--tiny", "--device", "cuda", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "UserError" in debug.stderr
