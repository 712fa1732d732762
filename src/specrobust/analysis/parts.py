"""What an analysis part is: one registry entry, defined in the part's own module.

A part computes a JSON-able result from an ``AnalysisContext`` (and its options), names a few
headline numbers for tables across models and seeds, draws its figure from ``(label, result)``
entries (one model, or many side by side in a report), and says in a title and a sentence what
it shows. Adding a part means adding a module that defines ``PART`` and registers it
(``PARTS.add(PART.name, PART)``), and naming the module in ``specrobust.analysis.PARTS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Entries = list[tuple[str, dict]]  # (model label, the part's result) for a figure


def _no_options(job: Any) -> dict:
    return {}


@dataclass(frozen=True)
class Part:
    name: str  # the --suite name and the file stem (<name>.json, <name>.png)
    title: str  # the report's heading
    explanation: str  # the report's sentence under it
    compute: Callable[..., dict]  # (context, **options) -> result
    headline: Callable[[dict], dict[str, float]]  # result -> {name: number} for tables
    plot: Callable[[Entries, Path], None]  # entries -> PNG file
    # The job's settings that change this part's result (they join its fingerprint).
    options: Callable[[Any], dict] = _no_options
