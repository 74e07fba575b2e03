"""`@hydra_command(name)`: `@hydra.main` for vlmscale's Hydra commands, with user errors as answers.

`python -m vlmscale.train` and `python -m vlmscale.eval` compose `conf/<name>.yaml`; their help page is the
`hydra/help` config the YAML selects. On top of Hydra (see vlmscale/errors.py for what a user error is):
- a UserError raised by the task in a single run: `error: <message>` on stderr, exit 2, no traceback. In a
  multirun it is left to Hydra's job record, so the sweep keeps it in the point's result.json;
- Hydra's own errors about the command line (an unknown group option, an override that does not parse, a key
  not in the config): the same, instead of Hydra's exit 1;
- anything else is a bug: Hydra's report with the traceback, exit 1.
`--debug` (or HYDRA_FULL_ERROR=1) shows the full traceback in every case.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from vlmscale.errors import UserError, debug_requested, report, take_debug_flag

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def hydra_command(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """`@hydra.main` composing conf/<config_name>.yaml, with user errors as answers (see above)."""

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        @functools.wraps(task)  # Hydra names the job (and its log file) after the wrapped function's file
        def task_answering_user_errors(cfg: DictConfig) -> Any:
            try:
                return task(cfg)
            except UserError as error:
                if debug_requested() or in_multirun():
                    raise
                sys.exit(report(error))

        hydra_main = hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)(
            task_answering_user_errors
        )

        @functools.wraps(task)
        def main(cfg: DictConfig | None = None) -> Any:
            if cfg is not None:  # called from Python with a composed config, as @hydra.main allows
                return task(cfg)
            sys.argv[1:] = [quote_path_value(arg) for arg in take_debug_flag(sys.argv[1:])]
            with hydra_usage_errors_exit_2():
                return hydra_main()

        return main

    return decorate


def quote_path_value(arg: str) -> str:
    """`ckpt=runs/llm=tiny-m/T=16/seed=0/checkpoints/last.ckpt` -> the same with the value quoted. Run folders
    are named `key=value`, and Hydra's override grammar refuses an unquoted `=` in a value; a value with
    quotes, brackets or commas (a sweep, a list) is left as the user wrote it."""
    key, sep, value = arg.partition("=")
    if not sep or arg.startswith("-") or "=" not in value or any(c in value for c in "'\",[]{}()"):
        return arg
    return f"{key}='{value}'"


@contextmanager
def hydra_usage_errors_exit_2() -> Iterator[None]:
    """Hydra reports its errors through `hydra._internal.utils.run_and_report` (message, then exit 1); its
    command-line errors are user errors, so for the command's duration that reporter answers them first."""
    from hydra._internal import utils
    from hydra.errors import CompactHydraException

    original = utils.run_and_report

    def run_and_report(func: Callable[[], Any]) -> Any:
        def answering() -> Any:
            try:
                return func()
            except CompactHydraException as error:
                if debug_requested():
                    raise
                sys.exit(report(UserError(hydra_error_message(error))))

        return original(answering)

    utils.run_and_report = run_and_report
    try:
        yield
    finally:
        utils.run_and_report = original


def hydra_error_message(error: Exception) -> str:
    """Hydra's message for a command-line error, with the override it is about and without its config
    search path (Hydra's business, not the user's)."""
    from hydra.errors import OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    message = str(error).split("\nConfig search path:")[0].rstrip()
    if isinstance(error, OverrideParseException):
        message = f"cannot read the override {error.override!r}: {message}"
    if isinstance(error.__cause__, OmegaConfBaseException):
        message += f"\n{error.__cause__}"
    return message
