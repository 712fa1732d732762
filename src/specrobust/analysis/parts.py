"""What an analysis part is: one registry entry, defined in the part's own module.

A part computes a JSON-able result, names a few headline numbers for tables across models and
seeds, draws its figure from ``(label, result)`` entries (one model, or many side by side in a
report), and says in a title and a sentence what it shows. It computes in one of two ways:

* ``tally``: a part that goes over the test images (with their PGD-20 images) is a running
  tally (``context.Tally``) fed every batch of the one pass all such parts share, so the images
  are decoded and attacked once, and never held whole;
* ``compute``: any other part (the first layer's kernels; the heat map, over its own few images)
  gets the ``AnalysisContext`` and returns its result.

Adding a part means adding a module that defines ``PART`` and registers it
(``PARTS.add(PART.name, PART)``), and naming the module in ``specrobust.analysis.PARTS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specrobust.analysis import PARTS

Entries = list[tuple[str, dict]]  # (model label, the part's result) for a figure


def _no_options(job: Any) -> dict:
    return {}


@dataclass(frozen=True)
class Part:
    name: str  # the --parts name and the file stem (<name>.json, <name>.png)
    title: str  # the report's heading
    explanation: str  # the report's sentence under it
    headline: Callable[[dict], dict[str, float]]  # result -> {name: number} for tables
    plot: Callable[[Entries, Path], None]  # entries -> PNG file
    tally: Callable[..., Any] | None = None  # (context, **options) -> a context.Tally
    compute: Callable[..., dict] | None = None  # (context, **options) -> result
    # The job's settings that change this part's result (they join its fingerprint).
    options: Callable[[Any], dict] = _no_options

    def __post_init__(self):
        if (self.tally is None) == (self.compute is None):
            raise TypeError(f"analysis part {self.name!r} needs exactly one of tally and compute")


def computed(ctx, requests: dict[str, dict]) -> Iterator[tuple[str, dict]]:
    """``(part, result)`` for each requested part (name -> its options), in order. The tallies
    share one pass over the test images, made when the first of them is reached."""
    tallied = {name: options for name, options in requests.items()
               if PARTS[name].tally is not None}
    results: dict[str, dict] = {}
    for name, options in requests.items():
        part = PARTS[name]
        if part.compute is not None:
            yield name, part.compute(ctx, **options)
            continue
        if not results:
            results = ctx.tally({other: PARTS[other].tally(ctx, **tallied[other])
                                 for other in tallied})
        yield name, results[name]
