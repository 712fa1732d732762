"""What every figure shares: matplotlib without a window, colours, axis extents for centred
spectra, and an atomic PNG write. Each analysis part's figure lives in the part's module
(``specrobust.analysis``) and takes ``entries``, a list of ``(label, result)``, so the same
function draws one model (a run's own analysis directory) or many side by side (the report;
``analysis.draw``). Accuracies and shares are plotted in %, frequencies in cycles per image."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from specrobust.files import storage  # noqa: E402

__all__ = ["COLOURS", "centred_extent", "extent", "np", "plt", "save"]

COLOURS = plt.get_cmap("tab10").colors


def save(figure, path: str | Path) -> None:
    figure.tight_layout()
    # "tight": titles of several lines over image panels are never cut off at the top.
    storage.write_with(path, lambda handle: figure.savefig(handle, format="png",
                                                           bbox_inches="tight", pad_inches=0.1))
    plt.close(figure)


def extent(values_y: list[int], values_x: list[int]):
    """For ``imshow(..., origin="lower")``: row 0 (the most negative fy) at the bottom."""
    return (values_x[0] - 0.5, values_x[-1] + 0.5, values_y[0] - 0.5, values_y[-1] + 0.5)


def centred_extent(height: int, width: int):
    return extent(list(range(-(height // 2), height - height // 2)),
                  list(range(-(width // 2), width - width // 2)))
