"""`--help` teaches: what the command does, the sweep axes, every config group in a line, 4-6 examples that
run (each is composed and validated here), then the config."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from vlmscale.cli import quote_path_value
from vlmscale.contract import to_plain
from vlmscale.validate import config_problems

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"


def help_text(module: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def section(text: str, title: str) -> str:
    return text.split(f"== {title}")[1].split("\n== ")[0]


def examples(text: str, module: str) -> list[list[str]]:
    """The example command lines of this module, as argument lists (comments dropped)."""
    lines = [line.split("#")[0].strip() for line in section(text, "Examples").splitlines()]
    prefix = f"python -m {module}"
    return [shlex.split(line)[3:] for line in lines if line.startswith(prefix + " ") or line == prefix]


def composed(config_name: str, args: list[str]):
    """The config an example composes as the command does (a path value with `=` quoted): -m dropped, the
    first value of each swept key."""
    overrides = [quote_path_value(re.sub(r"=([^,\[\]]+),.*$", r"=\1", a)) for a in args if a != "-m"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name, overrides=overrides, return_hydra_config=True)


@pytest.fixture(scope="module")
def train_help():
    return help_text("vlmscale.train")


def test_train_help_opens_with_what_it_does_and_the_sweep_axes(train_help):
    assert train_help.startswith("python -m vlmscale.train [GROUP=OPTION ...]")
    head = train_help.split("== Config groups")[0]
    assert "Trains one vision-language model" in head and "result.json" in head
    assert "Sweep axes: `llm`" in head and "`visual_tokens`" in head
    config = section(train_help, "Config (")
    assert "visual_tokens: 16" in config and "max_steps:" in config  # then the config itself


def test_every_config_group_has_its_line(train_help):
    groups = section(train_help, "Config groups")
    described = {line.split()[0].rstrip(",") for line in groups.splitlines() if line.startswith("  ")}
    options = {line.split(":")[0] for line in groups.splitlines() if re.match(r"^[a-z_/]+: ", line)}
    assert options and options <= described, f"groups without a line: {sorted(options - described)}"


def test_train_examples_compose_into_valid_configs(train_help):
    found = examples(train_help, "vlmscale.train")
    assert 4 <= len(found) <= 6
    for args in found:
        config = composed("train", args)
        plain = to_plain({k: v for k, v in config.items() if k != "hydra"})
        assert config_problems(plain) == [], args


def test_eval_help_and_examples(tmp_path):
    text = help_text("vlmscale.eval")
    assert text.startswith("python -m vlmscale.eval ckpt=PATH") and "Evaluates a trained checkpoint" in text
    found = examples(text, "vlmscale.eval")
    assert 3 <= len(found) <= 6
    for args in found:
        config = composed("eval", args)
        assert config.ckpt != "???" and list(config.tasks)  # a checkpoint named, tasks known
        for task in config.tasks:
            from vlmscale.eval.tasks import benchmark

            benchmark(task)
