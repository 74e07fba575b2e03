"""The analysis's user error: bad input, with the fix in its message (the CLI exits 2 with it, no traceback).

One kind of user error for the whole project (`vlmscale.errors.UserError`, standard library only, so the
analysis stays torch-free); this subclass only says the analysis raised it."""

from vlmscale.errors import UserError


class AnalysisInputError(UserError):
    """Bad input to the analysis (missing column, too few points, ...). The message names the fix."""
