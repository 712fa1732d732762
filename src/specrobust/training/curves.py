"""Training curves, as the paper's Fig. 3: clean and robust accuracy over epochs for training,
validation and (when measured) test data, raw and averaged model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from specrobust.files import storage  # noqa: E402

# (metric key, label, colour, line style)
_SERIES = [
    ("train_clean", "train clean", "tab:blue", ":"),
    ("train_robust", "train robust (training attack)", "tab:red", ":"),
    ("val_clean", "validation clean", "tab:blue", "-"),
    ("val_robust", "validation robust (PGD)", "tab:red", "-"),
    ("val_clean_avg", "validation clean, averaged model", "tab:cyan", "--"),
    ("val_robust_avg", "validation robust, averaged model", "tab:orange", "--"),
    ("test_clean", "test clean", "tab:blue", "-."),
    ("test_robust", "test robust (PGD)", "tab:red", "-."),
    ("test_clean_avg", "test clean, averaged model", "tab:cyan", "-."),
    ("test_robust_avg", "test robust, averaged model", "tab:orange", "-."),
]


def plot_training_curves(metrics: list[dict], path: str | Path, title: str = "") -> None:
    figure, axis = plt.subplots(figsize=(9, 4.5), dpi=120)
    for key, label, colour, style in _SERIES:
        points = [(m["epoch"], 100 * m[key]) for m in metrics if m.get(key) is not None]
        if points:
            epochs, values = zip(*points, strict=True)
            axis.plot(epochs, values, style, color=colour, label=label,
                      marker="o" if len(points) < 15 else None, markersize=3)
    best = [m for m in metrics if m.get("best_epoch")]
    if best:
        axis.axvline(best[-1]["best_epoch"], color="grey", linewidth=0.8, alpha=0.6)
        axis.text(best[-1]["best_epoch"], 1, "best ", color="grey", fontsize=8, ha="right")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("epoch")
    axis.set_ylabel("accuracy (%)")
    axis.set_ylim(0, 100)
    axis.set_title(title or "training curves")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    storage.write_with(path, lambda out: figure.savefig(out, format="png"))
    plt.close(figure)
