"""Bounded reading of what specrobust parses from files a user may hand over or may have
altered (records, summaries, plans, recipes, metadata): a size cap checked before anything is
read, and a nesting depth that ends in one line instead of a ``RecursionError`` traceback."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from specrobust.errors import SpecRobustError

# Larger than any record specrobust writes by orders of magnitude.
MAX_JSON_BYTES = 64 << 20
MAX_YAML_BYTES = 1 << 20
# Deeper than any record or plan specrobust writes or reads; far below Python's recursion limit.
MAX_DEPTH = 64
# More values than any of them holds: YAML aliases can make a small file a huge tree.
MAX_VALUES = 2_000_000


def check_size(path: Path, limit: int, what: str) -> None:
    """Refuse ``path`` when it is larger than ``limit`` bytes, before reading it."""
    size = path.stat().st_size
    if size > limit:
        raise SpecRobustError(f"{what} {path} is {size:,} bytes, more than the {limit:,} that "
                              "specrobust reads from such a file; it is not one it wrote")


def check_depth(value, what: str, limit: int = MAX_DEPTH) -> None:
    """Refuse a value nested deeper than ``limit`` (lists and mappings), or holding more than
    ``MAX_VALUES`` values, without recursion."""
    stack, seen = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise SpecRobustError(f"{what} holds more than {MAX_VALUES:,} values; refused")
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
    check_size(path, limit, what)
    with open(path, "rb") as handle:
        return loads_json(handle.read(limit + 1), f"{what} {path}")


def read_yaml(path: Path, what: str = "file", limit: int = MAX_YAML_BYTES):
    """The YAML value in ``path`` (safe loader), bounded like :func:`read_json`; raises
    ``yaml.YAMLError`` for text that is not YAML, ``UnicodeDecodeError`` for binary files."""
    check_size(path, limit, what)
    with open(path, "rb") as handle:
        text = handle.read(limit + 1).decode("utf-8")
    try:
        value = loads_yaml(text)
    except RecursionError:
        raise SpecRobustError(f"{what} {path} is nested too deeply to read; refused") from None
    check_depth(value, f"{what} {path}")
    return value


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

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
