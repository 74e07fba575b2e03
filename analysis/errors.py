"""The one exception type a user can act on: bad input, with the fix in its message (the CLI exits 2)."""


class AnalysisInputError(ValueError):
    """Bad input to the analysis (missing column, too few points, ...). The message names the fix."""
