"""A user error is an answer, not a crash: one message on stderr (what, where, the fix) and exit status 2.

Whatever the user can fix (a bad value, a missing file, a checkpoint from another config, an unknown benchmark,
too few points to fit) raises :class:`UserError` with a message naming the key or path and the fix. Every
entry point runs through :func:`command` (argparse) or `vlmscale.cli.hydra_command` (Hydra), which print
`error: <message>` and exit 2; any other exception is a bug and keeps its traceback. `--debug` (or Hydra's
own `HYDRA_FULL_ERROR=1`) shows the traceback of a user error too.

Standard library only: analysis (no torch), models (no Lightning, no Hydra) and benchmarks import it.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence

DEBUG_FLAG = "--debug"
DEBUG_ENV = (
    "HYDRA_FULL_ERROR"  # Hydra's switch for full tracebacks; --debug sets it, so one switch serves all
)
USER_ERROR_EXIT = 2  # as argparse exits on a bad argument


class UserError(ValueError):
    """Something the user fixes: the message says what is wrong, where (the key, the path) and the fix.
    A ValueError, so code that already catches bad values keeps working."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or a run should have left) is not there."""


def debug_requested() -> bool:
    return os.environ.get(DEBUG_ENV) == "1"


def take_debug_flag(argv: Sequence[str]) -> list[str]:
    """`argv` without `--debug`; when it was there, HYDRA_FULL_ERROR=1 for the rest of the process."""
    if DEBUG_FLAG in argv:
        os.environ[DEBUG_ENV] = "1"
    return [arg for arg in argv if arg != DEBUG_FLAG]


def message_of(error: BaseException) -> str:
    """The message as written (a KeyError's str() would quote it)."""
    if len(error.args) == 1 and isinstance(error.args[0], str):
        return error.args[0]
    return str(error)


def report(error: BaseException) -> int:
    """Print a user error the one way every command does; returns the exit status to use."""
    print(f"error: {message_of(error)}", file=sys.stderr, flush=True)
    return USER_ERROR_EXIT


def command(main: Callable[[list[str]], int | None]) -> Callable[..., int]:
    """An argparse entry point `main(argv) -> exit status | None` that answers user errors: the wrapped
    `main(argv=None)` takes `--debug` out of argv, returns 2 after `error: ...` on a UserError (re-raised with
    --debug), and lets every other exception through with its traceback. Call it as `sys.exit(main())`."""

    @functools.wraps(main)
    def run(argv: Sequence[str] | None = None) -> int:
        argv = take_debug_flag(sys.argv[1:] if argv is None else argv)
        try:
            return main(argv) or 0
        except UserError as error:
            if debug_requested():
                raise
            return report(error)

    return run


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse `type=` for integers >= low (argparse turns the error into usage + exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low} (got {text!r})")
        return value

    return parse
