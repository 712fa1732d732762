"""The one error type users see.

Anything a user can get wrong (a path, a dataset file, a model name, a config value) raises
`SpecRobustError` with one sentence that names the thing and says how to fix it. The CLI prints
that sentence on one line and exits with status 2; `--debug` shows the traceback instead.
"""


class SpecRobustError(ValueError):
    """A user-facing error: one sentence, no traceback needed. Its message is kept to one line
    (a library's multi-line message quoted inside it is folded). A ``ValueError``: what a user
    got wrong is a bad value, and code that catches those catches this."""

    exit_code = 2

    def __init__(self, message: object = ""):
        super().__init__(" ".join(str(message).split()))


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (a library's may run to many), cut to
    ``limit`` characters."""
    text = str(error).strip() or "?"
    return text.splitlines()[0][:limit]


def run_user_code(call, before: str, after: str = ""):
    """``call()``, which runs code that is not specrobust's (a user's model, a loaded program);
    whatever it raises (but an interrupt) becomes one line: ``before``, the error, ``after``."""
    try:
        return call()
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - the user's code: SystemExit included
        raise SpecRobustError(f"{before}{type(error).__name__}: {first_line(error)}{after}"
                              ) from None


def quoted(value: object, limit: int = 60) -> str:
    """``repr(value)`` for an error message, shortened so a long input keeps the message short
    (cut between characters, marked with an ellipsis)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


# What to do about the environmental faults a user can fix, by errno name.
_HINTS = {
    "ENOSPC": "free some space or write elsewhere",
    "EDQUOT": "free some space or write elsewhere",
    "EROFS": "write to a writable place (e.g. another --out)",
    "EACCES": "check the permissions, or write elsewhere",
    "EPERM": "check the permissions, or write elsewhere",
    "EISDIR": "name a file, not a directory",
    "ENOTDIR": "a part of that path is a file, not a directory",
    "ENOENT": "check the path",
    "ENAMETOOLONG": "use a shorter path",
    "ELOOP": "the path has a loop of symbolic links",
    "EEXIST": "it is in the way; choose another path",
}


def environment_error(error: BaseException) -> SpecRobustError | None:
    """The one-line error for a fault of the environment (disk, permissions, memory, a closed
    pipe), naming the path and the cause; None for anything else (a bug: keep its traceback)."""
    import errno as errno_names

    if isinstance(error, MemoryError) or (
            isinstance(error, RuntimeError) and
            any(s in str(error) for s in ("can't allocate memory", "out of memory"))):
        return SpecRobustError("out of memory; use a smaller --n or --batch-size, or a smaller "
                               "dataset option")
    if isinstance(error, BrokenPipeError):
        return SpecRobustError("output pipe closed before specrobust finished writing")
    if not isinstance(error, OSError):
        return None
    name = errno_names.errorcode.get(error.errno or 0, "")
    cause = (error.strerror or type(error).__name__).rstrip(".")
    paths = [p for p in (error.filename, error.filename2) if p is not None]
    where = f"{' -> '.join(map(str, paths))}: " if paths else ""
    hint = _HINTS.get(name)
    return SpecRobustError(f"{where}{cause}{f' [{name}]' if name else ''}"
                           f"{f'; {hint}' if hint else ''}")
