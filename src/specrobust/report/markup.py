"""The one place where text becomes HTML.

Reports are shared, and what they show comes from files anyone can edit (a model name in
``eval.json``, a run directory's name, a config). So no value is ever pasted into HTML as it
is: :func:`html` fills a template written in specrobust's code with values that are escaped,
unless they are :class:`Markup` (HTML this module produced). Every piece of a report is built
with it; a string that reached the page without passing through :func:`escape` cannot be
markup.
"""

from __future__ import annotations

import html as _html
from collections.abc import Iterable


class Markup(str):
    """HTML that is safe as it stands: made by :func:`html` or :func:`escape`."""

    __slots__ = ()


def escape(value: object) -> Markup:
    """``value`` as HTML text: Markup as it is, anything else with ``& < > " '`` escaped."""
    if isinstance(value, Markup):
        return value
    return Markup(_html.escape(str(value), quote=True))


def html(template: str, *values: object, **named: object) -> Markup:
    """``template.format(...)`` with every value escaped (Markup values are kept as they are).
    ``template`` is a literal of specrobust's code, never data."""
    return Markup(template.format(*map(escape, values),
                                  **{key: escape(value) for key, value in named.items()}))


def join(pieces: Iterable[object], separator: str = "") -> Markup:
    """Pieces (escaped unless Markup) joined by a literal separator."""
    return Markup(separator.join(escape(piece) for piece in pieces))
