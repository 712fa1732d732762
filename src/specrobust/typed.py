"""Plain data (YAML, JSON, ``--set``) into typed dataclasses, checked field by field against
their type hints: one builder for every configuration specrobust reads, one line naming the key
for every mistake."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Literal

from specrobust.errors import SpecRobustError, quoted
from specrobust.numbers import parse_number


def build(cls, data, prefix: str = "", aliases: dict[str, str] | None = None,
          kind: str = "config"):
    """``cls`` (a dataclass, nested dataclasses for sections) from the mapping ``data``: unknown
    keys, missing required ones, and values of another type than a field's hint, refused in
    one line (``kind`` names the file: config, plan). ``aliases`` maps a key as written to its
    field's name (``lambda`` -> ``lam``)."""
    aliases = aliases or {}
    if not isinstance(data, dict):
        raise SpecRobustError(f"{prefix.rstrip('.') or kind} must be a mapping, got "
                              f"{type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    written = {name: key for key, name in aliases.items()}
    values = {}
    for key, value in data.items():
        name = aliases.get(key, key)
        if name not in names:
            known = ", ".join(written.get(n, n) for n in sorted(names))
            raise SpecRobustError(f"unknown {kind} key {prefix}{key}; known here: {known}")
        values[name] = _convert(hints[name], value, f"{prefix}{key}", aliases, kind)
    for f in fields:
        required = f.default is dataclasses.MISSING and \
            f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        if required and f.name not in values:
            raise SpecRobustError(f"{kind} key {prefix}{written.get(f.name, f.name)} must be "
                                  "given")
    return cls(**values)


def rename_keys(data, aliases: dict):
    if isinstance(data, dict):
        return {aliases.get(k, k): rename_keys(v, aliases) for k, v in data.items()}
    return data


def _convert(hint, value, key: str, aliases: dict[str, str], kind: str):
    if dataclasses.is_dataclass(hint):
        return build(hint, value, f"{key}.", aliases, kind)
    if typing.get_origin(hint) is dict:
        # Keys as written (a plan checks them as names); values by the hint, key by key.
        if not isinstance(value, dict):
            raise SpecRobustError(f"{kind} key {key} must be a mapping, got {quoted(value)}")
        item = typing.get_args(hint)[1]
        return {k: _convert(item, v, f"{key}.{k}", aliases, kind) for k, v in value.items()}
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise SpecRobustError(f"{kind} key {key} must not be empty")
    for option in options:
        if option is type(None):
            continue
        converted = _as_type(option, value)
        if converted is not _MISMATCH:
            return converted
    wanted = " or ".join(_type_name(o) for o in options if o is not type(None))
    raise SpecRobustError(f"{kind} key {key} must be {wanted}, got {quoted(value)}")


_MISMATCH = object()


def _as_type(option, value):
    if typing.get_origin(option) is Literal:
        return value if value in typing.get_args(option) else _MISMATCH
    if typing.get_origin(option) is list:
        (item,) = typing.get_args(option)
        if not isinstance(value, list):
            return _MISMATCH
        items = [_as_type(item, v) for v in value]
        return _MISMATCH if any(i is _MISMATCH for i in items) else items
    if option is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if option is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if option is float:
        # YAML 1.1 reads 1e-3 (no point) as text: accept Python's float syntax there too.
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return _MISMATCH
        try:
            return parse_number(value)
        except SpecRobustError:
            return _MISMATCH
    if option is str:
        # Budgets may be written as numbers too (eps: 0.1); keep them as text.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value if isinstance(value, str) else _MISMATCH
    return _MISMATCH


def _type_name(option) -> str:
    if typing.get_origin(option) is Literal:
        return f"one of {', '.join(typing.get_args(option))}"
    if typing.get_origin(option) is list:
        return f"a list of {_type_name(typing.get_args(option)[0])}"
    return {bool: "true or false", int: "a whole number", float: "a number",
            str: "text"}.get(option, str(option))
