"""One way to register and look up anything named: models, attacks, analysis parts, objectives,
pretrained entries, datasets.

A :class:`Registry` is a read-only mapping from names to entries, filled by one line beside each
definition (``@MODELS.register("resnet18")`` above a factory, ``ATTACKS.add(kind.name, kind)``
after a definition), as timm's ``@register_model`` does. Where the entries live in modules that
are costly to import, the registry knows those modules and imports them on the first lookup
(``modules``), or knows each name's module and imports only that one (``lazy``), so a name can
be listed (``--help``) without importing anything. An unknown name is one line that lists the
known ones and the nearest.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from specrobust.errors import SpecRobustError

T = TypeVar("T")


class UnknownName(SpecRobustError, KeyError):
    """A name no entry has: a one-line error for users, a ``KeyError`` for mapping code."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """Entries of one kind by name, in the order they were registered (``lazy``: in its
    order). ``what`` names the kind in messages ("model", "attack")."""

    def __init__(self, what: str, *, modules: tuple[str, ...] = (),
                 lazy: Mapping[str, str] | None = None, hint: str = ""):
        self.what, self.hint = what, hint
        self._entries: dict[str, T] = {}
        self._modules = modules  # imported, in order, on the first lookup
        self._lazy = dict(lazy or {})  # name -> the module that registers it
        self._added: set[str] = set()  # names added to a lazy registry from outside it
        self._loading = False

    # ---- filling ------------------------------------------------------------------------------

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name``; a name registered twice is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        if self._lazy and name not in self._lazy:  # registered by code outside the package
            self._lazy[name] = getattr(entry, "__module__", type(entry).__module__)
            self._added.add(name)
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> T:
        """Take an entry out again (a plugin's test registers one for a while)."""
        if name in self._added:
            del self._lazy[name]
            self._added.discard(name)
        return self._entries.pop(name)

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """A decorator: ``@REGISTRY.register("name")``, or ``@REGISTRY.register()`` to use the
        entry's ``name`` attribute (classes) or its ``__name__`` (functions)."""
        def decorate(entry: T) -> T:
            key = name or getattr(entry, "name", None) or entry.__name__  # type: ignore
            return self.add(str(key), entry)
        return decorate

    # ---- looking up ---------------------------------------------------------------------------

    def names(self) -> tuple[str, ...]:
        """The names, without importing a lazy registry's modules."""
        if self._lazy:
            return tuple(self._lazy)
        self._load()
        return tuple(self._entries)

    def __getitem__(self, name: str) -> T:
        if self._lazy and name in self._lazy and name not in self._entries:
            importlib.import_module(self._lazy[name])
            if name not in self._entries:
                raise RuntimeError(f"module {self._lazy[name]} does not register {self.what} "
                                   f"{name!r}")
        self._load()
        if name not in self._entries:
            raise UnknownName(self.unknown(name))
        return self._entries[name]

    def unknown(self, name: object) -> str:
        """The line for a name no entry has: the known names, and the nearest."""
        names = self.names()
        nearest = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
        near = f" (did you mean {', '.join(nearest)}?)" if nearest else ""
        listed = ", ".join(names) if len(names) <= 20 else \
            f"{', '.join(names[:20])}, ... ({len(names)} in all)"
        return f"unknown {self.what} {str(name)[:80]!r}{near}; known: {listed}{self.hint}"

    def __contains__(self, name: object) -> bool:
        if self._lazy:
            return name in self._lazy
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def _load(self) -> None:
        if self._loading or not self._modules:
            return
        self._loading = True  # a module being imported may look names up while it registers
        try:
            for module in self._modules:
                importlib.import_module(module)
            self._modules = ()
        finally:
            self._loading = False
