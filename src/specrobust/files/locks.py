"""Advisory locks that keep two processes from writing the same results in turn.

A lock is ``flock`` on an open descriptor: the system drops it when the process ends, however it
ends, so a killed run never leaves a stale lock behind. Where the platform has no ``flock``
(Windows) nothing is locked.

A lock *file* (for an output that is replaced rather than rewritten) is removed by the process
that releases it, while it still holds the lock; a process that locked the file just before it
was removed finds that its descriptor no longer names the path, and locks the new file instead.
Only a killed process leaves its lock file behind (empty, and reused by the next one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from specrobust.errors import SpecRobustError


class InUseError(SpecRobustError):
    """Another process holds the lock."""


def claim(target: Path, error: InUseError, *, create: bool = False) -> int | None:
    """Lock ``target`` (a directory or a file; ``create`` makes a missing file) without waiting.

    Returns the descriptor to pass to :func:`release`, or None where locks are not supported;
    raises ``error`` when another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:
        return None
    return _locked(target, create, fcntl.LOCK_EX | fcntl.LOCK_NB, error)


def _locked(target: Path, create: bool, operation: int, error: InUseError | None) -> int:
    import fcntl

    while True:
        descriptor = _open(target, create)
        try:
            fcntl.flock(descriptor, operation)
        except OSError:
            os.close(descriptor)
            if error is None:
                raise
            raise error from None
        if not create or _names(target, descriptor):
            return descriptor
        os.close(descriptor)  # its holder removed the file while we waited: lock the new one


def _names(target: Path, descriptor: int) -> bool:
    """Whether ``target`` is still the file open at ``descriptor``."""
    try:
        there = os.stat(target, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(descriptor)
    return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


def _open(target: Path, create: bool) -> int:
    if not create:
        # The real path: two names of one place (a link and its target) meet at one lock.
        return os.open(os.path.realpath(target), os.O_RDONLY)
    # A lock file is created, never followed: a link in its place (dangling or not) would make
    # specrobust create or open whatever it points to.
    try:
        return os.open(target, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as failure:
        if os.path.islink(target):
            raise SpecRobustError(f"lock file {target} is a symbolic link; specrobust does not "
                                  "follow links it writes: remove it") from None
        raise failure


@contextmanager
def waited(target: Path) -> Iterator[None]:
    """A lock on the file ``target`` (created if absent) for the length of a ``with`` block,
    waiting for another process that holds it: for short writes every process makes in turn."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    descriptor = _locked(target, True, fcntl.LOCK_EX, None)
    try:
        yield
    finally:
        _release_file(target, descriptor)


def in_use(target: Path) -> bool:
    """Whether another process holds ``target``'s lock now (False where nothing is there)."""
    if not target.exists():
        return False
    try:
        release(claim(target, InUseError(str(target))))
    except InUseError:
        return True
    return False


def beside(path: Path) -> Path:
    """The hidden lock file for an output file that is replaced rather than rewritten (so it
    cannot hold a lock itself), named after the file's real path."""
    real = Path(os.path.realpath(path))
    return real.with_name(f".{real.name}.lock")


def release(descriptor: int | None) -> None:
    if descriptor is not None:
        os.close(descriptor)


def _release_file(target: Path, descriptor: int | None) -> None:
    """Remove the lock file ``target`` (if it is still ours), then release its lock."""
    if descriptor is None:
        return
    try:
        if _names(target, descriptor):
            os.unlink(target)
    except OSError:  # a read-only directory: the empty file stays, and is reused
        pass
    os.close(descriptor)


@contextmanager
def held(target: Path, error: InUseError, *, create: bool = False) -> Iterator[None]:
    """:func:`claim` for the length of a ``with`` block (a lock file it ``create``s is removed
    at the end)."""
    descriptor = claim(target, error, create=create)
    try:
        yield
    finally:
        if create:
            _release_file(target, descriptor)
        else:
            release(descriptor)
