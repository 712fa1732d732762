"""specrobust's files on disk: written whole, read within bounds.

Writing. Writes that matter are atomic: a temporary file in the same directory, then a rename,
so an interrupted run (or a full disk) leaves either the old file or the new one, never half of
one, and no temporary file behind. A kill -9 cannot run the clean-up, so the temporary file is
named for what it is (``layout.temporary_prefix``) and the next command that owns the directory
removes it (``layout.remove_leftovers``). Every directory is reached from the root through
directory descriptors that follow no link, from where the paths a user typed led when the
command started (:func:`anchor`); a target that is a link, or a link met below, is refused
rather than followed (``specrobust.files.outputs`` states the rule). Only regular files are
read: a FIFO or device is refused by its type.

Reading. What specrobust parses from files a user may hand over or may have altered (records,
summaries, plans, recipes, metadata) is read with a size cap checked before anything is read,
and a nesting depth that ends in one line instead of a ``RecursionError`` traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from specrobust.errors import SpecRobustError, quoted
from specrobust.files.layout import temporary_prefix

# ---- writing ------------------------------------------------------------------------------------


_DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


# Directories a user named, as typed (absolute) -> where they led when the command started
# (``specrobust.files.outputs.typed``): the one place links are followed.
_ANCHORS: dict[Path, Path] = {}


def anchor(typed: Path, real: Path) -> None:
    """Remember that the directory ``typed`` (a path the user gave) is ``real``: writes below
    it go to ``real`` without following any link again (:func:`_descend`)."""
    _ANCHORS[Path(os.path.abspath(typed))] = Path(real)


def anchored(directory: str | os.PathLike) -> Path:
    """``directory`` (a place the user named: a data root, a model cache) anchored where it
    leads now (:func:`anchor`), returned as given."""
    directory = Path(directory)
    anchor(directory, Path(os.path.realpath(directory)))
    return directory


def _real(absolute: Path) -> Path:
    """``absolute`` with the longest anchored directory above it replaced by where it led."""
    for typed in sorted(_ANCHORS, key=lambda path: len(path.parts), reverse=True):
        if absolute == typed or typed in absolute.parents:
            return _ANCHORS[typed] / absolute.relative_to(typed)
    return absolute


def _descend(directory: Path, create: bool) -> int:
    """A descriptor on ``directory``, reached from the file system's root one component at a
    time, each opened relative to the last without following a link (``O_NOFOLLOW``), missing
    ones created when ``create``. The directories of a path the user typed were resolved once
    when the command started (:func:`anchor`), so a link met here was put there during the run:
    refused, never followed, whatever was checked before."""
    absolute = _real(Path(os.path.abspath(directory)))
    descriptor = os.open(absolute.anchor, _DIRECTORY_FLAGS)
    try:
        for index, part in enumerate(absolute.parts[1:], 2):
            try:
                below = os.open(part, _DIRECTORY_FLAGS | _NO_FOLLOW, dir_fd=descriptor)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=descriptor)
                below = os.open(part, _DIRECTORY_FLAGS | _NO_FOLLOW, dir_fd=descriptor)
            except OSError as error:
                here = Path(*absolute.parts[:index])
                if error.errno in (errno.ELOOP, errno.ENOTDIR) and \
                        stat.S_ISLNK(os.lstat(part, dir_fd=descriptor).st_mode):
                    raise SpecRobustError(f"{here} is a symbolic link; specrobust does not "
                                          "follow links below the paths you name (name the "
                                          "real path)") from None
                raise
            os.close(descriptor)
            descriptor = below
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def make_directories(directory: str | os.PathLike) -> None:
    """``mkdir -p`` that follows no link (:func:`_descend`)."""
    os.close(_descend(Path(directory), create=True))


@contextlib.contextmanager
def replacing(target: str | os.PathLike) -> Iterator[IO[bytes]]:
    """A new file beside ``target``, open for writing, renamed to ``target`` when the block
    ends and removed if it raises. Its directory is held by a descriptor reached without
    following links (:func:`_descend`), and the file is created and renamed relative to it,
    so nothing is written through a link, even one swapped in while it is written."""
    target = Path(target)
    directory = _descend(target.parent, create=True)
    try:
        if stat.S_ISLNK(_mode_in(directory, target.name)):
            raise SpecRobustError(f"{target} is a symbolic link; specrobust does not write "
                                  "through links")
        temporary = f"{temporary_prefix(target)}{secrets.token_hex(6)}"
        # The mode is 0666 less the umask, as a plain open() gives.
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW |
                         getattr(os, "O_CLOEXEC", 0), 0o666, dir_fd=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                yield out
            os.replace(temporary, target.name, src_dir_fd=directory, dst_dir_fd=directory)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=directory)
    finally:
        os.close(directory)


def _mode_in(directory: int, name: str) -> int:
    try:
        return os.lstat(name, dir_fd=directory).st_mode
    except FileNotFoundError:
        return 0


def write_with(target: str | os.PathLike, writer: Callable[[IO[bytes]], object]) -> None:
    """Call ``writer(file)`` on a new file, flush it to disk, then rename it to ``target``
    (:func:`replacing`)."""
    target = Path(target)
    with replacing(target) as out:
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


# ---- reading ------------------------------------------------------------------------------------


# Larger than any record specrobust writes by orders of magnitude.
MAX_JSON_BYTES = 64 << 20
MAX_YAML_BYTES = 1 << 20
# Deeper than any record or plan specrobust writes or reads; far below Python's recursion limit.
MAX_DEPTH = 64
# More values than any of them holds: YAML aliases can make a small file a huge tree.
MAX_VALUES = 2_000_000


_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
            (stat.S_ISDIR, "a directory"))


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file is ("a FIFO"); None for a regular file."""
    return None if stat.S_ISREG(mode) else next(
        (name for test, name in _SPECIAL if test(mode)), "not a regular file")


def open_regular(path: str | os.PathLike, what: str = "file") -> int:
    """A descriptor open for reading on ``path``, which must be a regular file: a FIFO, device
    or socket is refused by its type before it is opened (reading one could block forever or
    never end), and checked again on the open descriptor, so a swap in between is refused.
    ``OSError`` as the system raises it for a path that is absent or unreadable."""
    before = _kind(os.stat(path).st_mode)  # OSError (absent, unreadable) as os raises it
    if before is None:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if before is not None:
        raise SpecRobustError(f"{what} {path} is {before}, not a regular file; name a file")
    after = _kind(os.fstat(descriptor).st_mode)
    if after is not None:
        os.close(descriptor)
        raise SpecRobustError(f"{what} {path} is {after}, not a regular file; name a file")
    return descriptor


def read_regular(path: str | os.PathLike, what: str, limit: int) -> bytes:
    """The whole of the regular file ``path``, refused in one line when it declares (its size)
    more than ``limit`` bytes, before anything is read; a file that grows while it is read is
    cut at ``limit + 1`` bytes and refused."""
    descriptor = open_regular(path, what)
    try:
        size = os.fstat(descriptor).st_size
        if size > limit:
            raise SpecRobustError(f"{what} {path} is {size:,} bytes, more than the {limit:,} "
                                  "that specrobust reads from such a file")
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise SpecRobustError(f"{what} {path} grew past {limit:,} bytes while it was read")
    return data


def check_depth(value, what: str, limit: int = MAX_DEPTH) -> None:
    """Refuse a value nested deeper than ``limit`` (lists and mappings), or holding more than
    ``MAX_VALUES`` values, without recursion."""
    stack, seen = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise SpecRobustError(f"{what} holds more than {MAX_VALUES:,} values; refused")
        children: Iterable
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            raise SpecRobustError(f"{what} is nested more than {limit} levels deep; refused")
        stack.extend((child, depth + 1) for child in children)


def loads_json(text: str | bytes, what: str):
    """``json.loads`` with the depth bound; ``ValueError`` for text that is not JSON."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise SpecRobustError(f"{what} is nested too deeply to read; refused") from None
    check_depth(value, what)
    return value


def read_json(path: Path, what: str = "file", limit: int = MAX_JSON_BYTES):
    """The JSON value in ``path``: ``OSError`` and ``ValueError`` as ``open``/``json`` raise
    them (callers decide whether an unreadable file is absent or an error), one line for a file
    too large or too deep."""
    return loads_json(read_regular(path, what, limit), f"{what} {path}")


def read_yaml(path: Path, what: str = "file", limit: int = MAX_YAML_BYTES):
    """The YAML value in ``path`` (safe loader), bounded like :func:`read_json`; raises
    ``yaml.YAMLError`` for text that is not YAML, ``UnicodeDecodeError`` for binary files."""
    text = read_regular(path, what, limit).decode("utf-8")
    try:
        value = loads_yaml(text)
    except RecursionError:
        raise SpecRobustError(f"{what} {path} is nested too deeply to read; refused") from None
    check_depth(value, f"{what} {path}")
    return value


# Allowed by list: the YAML types a recipe, plan or record may hold (no dates, sets, binary or
# ordered pairs; tags naming Python objects are unknown to the safe loader and refused by it).
YAML_TYPES = ("null", "bool", "int", "float", "str", "seq", "map")


def loads_yaml(text: str):
    """``yaml.safe_load`` that refuses a mapping naming a key twice (PyYAML keeps the last one
    silently, so a plan's second ``AT:`` would replace its first without a word)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        keys = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges; later keys override
                continue
            key = loader.construct_object(key_node, deep=deep)
            try:
                repeated = key in keys
            except TypeError:  # an unhashable key: the constructor says so below
                repeated = False
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping",
                    key_node.start_mark)
            with contextlib.suppress(TypeError):
                keys.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    def refused(loader, node):
        raise yaml.constructor.ConstructorError(
            None, None, f"a value of type {node.tag.rsplit(':', 1)[-1]} is not allowed (YAML "
            f"types allowed: {', '.join(YAML_TYPES)}; quote it to make it text)", node.start_mark)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    for tag in _Loader.yaml_constructors:
        if tag is not None and tag.startswith("tag:yaml.org,2002:") and \
                tag.rsplit(":", 1)[-1] not in YAML_TYPES + ("merge",):
            _Loader.add_constructor(tag, refused)
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def read_mapping(path: Path, *, kind: str, what: str, holds: str) -> dict:
    """The mapping in ``path``. ``kind`` names the file in messages ("config file"), ``what``
    is what such a file is ("a recipe"), ``holds`` what its mapping holds ("config
    sections")."""
    import yaml

    try:
        if path.is_dir():
            raise SpecRobustError(f"{kind} {path} is a directory; {what} is a YAML file")
        data = read_yaml(path, kind)  # a FIFO or device: refused by type, never read
    except FileNotFoundError:
        raise SpecRobustError(f"{kind} {path} does not exist") from None
    except OSError as error:  # a name too long, a loop of links, no permission
        raise SpecRobustError(f"{kind} {quoted(str(path))}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SpecRobustError(f"{path} is not valid YAML ({str(error).splitlines()[0]})") \
            from None
    except UnicodeDecodeError:
        raise SpecRobustError(f"{path} is not a text file; {what} is YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecRobustError(f"{path} must hold a mapping of {holds}")
    return data
