"""The recipes and study plans that ship with specrobust, found by name.

    recipes/*.yaml               training recipes (`specrobust train NAME`)
    recipes/replication/*.yaml   the CPU-scale replication's recipes
    recipes/studies/*.yaml       study plans (`specrobust study NAME`)

Every command that takes a recipe or a plan takes a path or a shipped name; a path that exists
wins. A recipe's ``base:`` and a plan's ``recipe:`` are read relative to their file first, then
as shipped names, so a user's own recipe may build on a shipped one.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from specrobust.errors import SpecRobustError, quoted

RECIPE, PLAN = "recipe", "study plan"
# (folder, the prefix of its files' names): replication recipes are `replication/NAME`.
_FOLDERS = {RECIPE: (("", ""), ("replication", "replication/")), PLAN: (("studies", ""),)}


def shipped_root() -> Path:
    """The folder of the shipped files (the package is installed unzipped: setuptools' wheels
    are)."""
    return Path(str(resources.files(__name__)))


def shipped(kind: str) -> dict[str, Path]:
    """Shipped name -> file, for recipes or plans (a recipe of ``replication/`` is named
    ``replication/NAME``)."""
    root, found = shipped_root(), {}
    for folder, prefix in _FOLDERS[kind]:
        for path in sorted((root / folder).glob("*.yaml")):
            found[prefix + path.stem] = path
    return found


def find(text: str, kind: str, relative_to: Path | None = None) -> Path:
    """The file ``text`` names: a path (relative to ``relative_to`` where given) that exists,
    else a shipped name (with or without ``.yaml``); one line naming the nearest names when it
    is neither."""
    candidate = (relative_to / text) if relative_to is not None else Path(text)
    try:
        if candidate.exists():
            return candidate
    except OSError as error:  # a name too long, a loop of links
        raise SpecRobustError(f"{kind} {quoted(text)}: {error.strerror}") from None
    names = shipped(kind)
    name = text[:-5] if text.endswith(".yaml") else text
    if name in names:
        return names[name]
    if "/" in text.removeprefix("replication/") or text.endswith((".yml",)) or \
            relative_to is not None and Path(text).suffix:
        raise SpecRobustError(f"{kind} {candidate} does not exist")
    nearest = difflib.get_close_matches(name, list(names), n=3, cutoff=0.5)
    hint = f"; nearest: {', '.join(nearest)}" if nearest else \
        "; `specrobust recipes` lists the shipped ones"
    raise SpecRobustError(f"{kind} {quoted(text)} is neither a file nor a shipped name{hint}")
