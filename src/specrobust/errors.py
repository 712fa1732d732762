"""The one error type users see.

Anything a user can get wrong (a path, a dataset file, a model name, a config value) raises
`SpecRobustError` with one sentence that names the thing and says how to fix it. The CLI prints
that sentence on one line and exits with status 2; `--debug` shows the traceback instead.
"""


class SpecRobustError(Exception):
    """A user-facing error: one sentence, no traceback needed."""

    exit_code = 2
