"""Writes that matter are atomic: a temporary file in the same directory, then a rename, so an
interrupted run (or a full disk) leaves either the old file or the new one, never half of one,
and no temporary file behind. A kill -9 cannot run the clean-up, so the temporary file is named
for what it is (``layout.temporary_prefix``) and the next command that owns the directory
removes it (``layout.remove_leftovers``). A target that is a symbolic link, or lies in a linked
directory, is refused rather than followed (``specrobust.outputs`` states the rule)."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from specrobust.errors import SpecRobustError
from specrobust.layout import temporary_prefix


@contextlib.contextmanager
def replacing(target: str | os.PathLike) -> Iterator[str]:
    """A temporary file's path beside ``target``, renamed to ``target`` when the block ends
    and removed if it raises (a download checked before it takes the target's place)."""
    target = Path(target)
    for path in (target, target.parent):
        if path.is_symlink():
            raise SpecRobustError(f"{path} is a symbolic link; specrobust does not write "
                                  "through links")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=temporary_prefix(target))
    os.close(handle)
    # mkstemp makes the file private (0600); give it the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_with(target: str | os.PathLike, writer: Callable[[IO[bytes]], None]) -> None:
    """Call ``writer(file)`` on a temporary file, flush it to disk, then rename it to ``target``."""
    target = Path(target)
    with replacing(target) as temporary:
        with open(temporary, "wb") as out:
            try:
                writer(out)
                out.flush()
                os.fsync(out.fileno())
            except (OSError, SpecRobustError):
                raise
            except Exception:
                # Libraries report a write that failed for want of space in their own words
                # (torch.save: "unexpected pos"): say what happened, as the system would.
                if _nearly_full(target.parent):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target)) from None
                raise


def _nearly_full(directory: Path) -> bool:
    try:
        stats = os.statvfs(directory)
    except (OSError, AttributeError):  # AttributeError: no statvfs on this platform
        return False
    return stats.f_bavail * stats.f_frsize < (1 << 20)


def write_text(target: str | os.PathLike, text: str) -> None:
    write_with(target, lambda out: out.write(text.encode("utf-8")))


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    write_with(target, lambda out: out.write(data))
