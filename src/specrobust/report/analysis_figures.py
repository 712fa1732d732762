"""Figures of the analysis parts. Each takes ``entries``, a list of ``(label, part JSON)``, so the
same function draws one model (a run's own analysis directory) or many side by side (the report).
Accuracies and shares are plotted in %, frequencies in cycles per image."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from specrobust import atomic  # noqa: E402

Entries = list[tuple[str, dict]]
_COLOURS = plt.get_cmap("tab10").colors


def _save(figure, path: str | Path) -> None:
    figure.tight_layout()
    atomic.write_with(path, lambda handle: figure.savefig(handle, format="png"))
    plt.close(figure)


def _extent(values_y: list[int], values_x: list[int]):
    """For ``imshow(..., origin="lower")``: row 0 (the most negative fy) at the bottom."""
    return (values_x[0] - 0.5, values_x[-1] + 0.5, values_y[0] - 0.5, values_y[-1] + 0.5)


def _centred_extent(height: int, width: int):
    return _extent(list(range(-(height // 2), height - height // 2)),
                   list(range(-(width // 2), width - width // 2)))


def plot_filter_sweep(entries: Entries, path: str | Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for k, (label, data) in enumerate(entries):
        colour = _COLOURS[k % len(_COLOURS)]
        for axis, name in zip(axes, ("lowpass", "highpass"), strict=True):
            part = data[name]
            axis.plot(part["bandwidths"], 100 * np.array(part["clean"]), "-o", color=colour,
                      markersize=3, label=f"{label}, clean")
            axis.plot(part["bandwidths"], 100 * np.array(part["pgd20"]), "--s", color=colour,
                      markersize=3, label=f"{label}, PGD-20")
    axes[0].set_title("low-pass: keep the centred b x b block")
    axes[0].set_xlabel("bandwidth b (cycles per image; b = image size: unfiltered)")
    axes[0].invert_xaxis()
    axes[1].set_title("high-pass: remove the centred b x b block (mean kept)")
    axes[1].set_xlabel("bandwidth b removed (cycles per image; 0: unfiltered)")
    for axis in axes:
        axis.set_ylabel("accuracy (%)")
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.suptitle("Accuracy on filtered inputs (Table 1 of the paper)")
    _save(figure, path)


def plot_spectra(entries: Entries, path: str | Path) -> None:
    columns = [("clean_amplitude", "clean images"), ("adversarial_amplitude", "adversarial"),
               ("perturbation_amplitude", "perturbation (adv - clean)")]
    figure, axes = plt.subplots(len(entries), 4, figsize=(15, 3.4 * len(entries)), dpi=100,
                                squeeze=False)
    for row, (label, data) in enumerate(entries):
        for col, (key, title) in enumerate(columns):
            amplitude = np.array(data[key])
            image = axes[row, col].imshow(np.log10(amplitude + 1e-6), cmap="viridis",
                                          origin="lower", extent=_centred_extent(*amplitude.shape))
            colourbar = figure.colorbar(image, ax=axes[row, col], fraction=0.046, pad=0.04)
            colourbar.set_label("log10 mean |FFT|", fontsize=7)
            axes[row, col].set_title(f"{label}: {title}", fontsize=9)
            axes[row, col].set_xlabel("horizontal frequency (cycles/image)", fontsize=7)
            axes[row, col].set_ylabel("vertical frequency", fontsize=7)
        axis = axes[row, 3]
        axis.plot(data["radii"], 100 * np.array(data["perturbation_radial_share"]), "-o",
                  markersize=2, color="tab:red", label="perturbation")
        axis.plot(data["radii"], 100 * np.array(data["clean_radial_share"]), "-", color="grey",
                  label="clean images")
        shares = data["perturbation_band_shares"]
        axis.set_title("perturbation energy per ring\nlow / mid / high band: "
                       + " / ".join(f"{100 * shares[b]:.0f}%" for b in ("low", "mid", "high")),
                       fontsize=9)
        axis.set_xlabel("frequency radius (cycles/image)", fontsize=7)
        axis.set_ylabel("share of energy (%)", fontsize=7)
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    _save(figure, path)


def plot_band_attacks(entries: Entries, path: str | Path) -> None:
    groups = ["low", "mid", "high", "unrestricted", "clean"]
    figure, axis = plt.subplots(figsize=(8, 4), dpi=110)
    width = 0.8 / max(len(entries), 1)
    for k, (label, data) in enumerate(entries):
        values = [data["bands"][g] if g in data["bands"] else data[g] for g in groups]
        bars = axis.bar(np.arange(len(groups)) + k * width, 100 * np.array(values), width,
                        label=label, color=_COLOURS[k % len(_COLOURS)])
        axis.bar_label(bars, fmt="%.0f", fontsize=6)
    axis.set_xticks(np.arange(len(groups)) + width * (len(entries) - 1) / 2,
                    ["PGD-20, low band", "mid band", "high band", "all frequencies", "no attack"])
    axis.set_ylabel("accuracy (%)")
    axis.set_ylim(0, 105)
    axis.set_title("Robust accuracy under band-limited PGD-20 (same eps)")
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=7)
    _save(figure, path)


def plot_heatmaps(entries: Entries, path: str | Path) -> None:
    columns = min(len(entries), 3)
    rows = math.ceil(len(entries) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4 * rows), dpi=110,
                                squeeze=False)
    # One colour scale for all models, from the lowest clean error to the highest error seen:
    # a fixed 0-100% scale would flatten the maps of robust models to one colour.
    maps = [100 * np.array(data["error_rate"]) for _, data in entries]
    low = min(100 * data["clean_error"] for _, data in entries)
    high = max(low + 1, max(float(np.nanmax(m)) for m in maps))
    for k, ((label, data), error) in enumerate(zip(entries, maps, strict=True)):
        axis = axes[k // columns, k % columns]
        image = axis.imshow(error, cmap="magma", vmin=low, vmax=high, origin="lower",
                            extent=_extent(data["frequencies_y"], data["frequencies_x"]))
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04).set_label("error rate (%)")
        axis.set_title(f"{label}\nFourier heat map, L2 norm {data['norm']:.2f} "
                       f"(clean error {100 * data['clean_error']:.0f}%)", fontsize=9)
        axis.set_xlabel("horizontal frequency (cycles/image)", fontsize=8)
        axis.set_ylabel("vertical frequency (cycles/image)", fontsize=8)
    for k in range(len(entries), rows * columns):
        axes[k // columns, k % columns].axis("off")
    _save(figure, path)


def _kernel_mosaic(weights: np.ndarray) -> np.ndarray:
    """Kernels as tiles (RGB for 3 input channels, else the mean over input channels in grey),
    each scaled to [0, 1]."""
    out_channels, in_channels, k, _ = weights.shape
    tiles = weights if in_channels == 3 else weights.mean(axis=1, keepdims=True)
    low = tiles.min(axis=(1, 2, 3), keepdims=True)
    high = tiles.max(axis=(1, 2, 3), keepdims=True)
    tiles = (tiles - low) / np.maximum(high - low, 1e-12)
    tiles = np.broadcast_to(tiles, (out_channels, 3, k, k))  # grey kernels as RGB
    per_row = math.ceil(math.sqrt(out_channels))
    rows = math.ceil(out_channels / per_row)
    # A coloured gap between tiles, so white kernel pixels do not merge with it.
    mosaic = np.empty(((k + 1) * rows + 1, (k + 1) * per_row + 1, 3))
    mosaic[:] = (0.55, 0.7, 0.95)
    for index in range(out_channels):
        r, c = divmod(index, per_row)
        mosaic[1 + r * (k + 1):1 + r * (k + 1) + k, 1 + c * (k + 1):1 + c * (k + 1) + k] = \
            tiles[index].transpose(1, 2, 0)
    return mosaic


def plot_kernels(entries: Entries, path: str | Path) -> None:
    figure, axes = plt.subplots(1, len(entries), figsize=(4 * len(entries), 4.4), dpi=110,
                                squeeze=False)
    for axis, (label, data) in zip(axes[0], entries, strict=True):
        mosaic = _kernel_mosaic(np.array(data["weights"]))
        axis.imshow(mosaic, interpolation="nearest")
        axis.set_title(f"{label}\n{data['layer']} {tuple(data['shape'])}; non-DC energy "
                       f"{100 * data['high_frequency_share']:.1f}%", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_xlabel("each tile: one kernel, scaled to its own range", fontsize=7)
    _save(figure, path)


def plot_logit_gap(entries: Entries, path: str | Path) -> None:
    figure, axis = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    for k, (label, data) in enumerate(entries):
        axis.scatter(data["sar_batch_class"], 100 * data["pgd20"], s=40,
                     color=_COLOURS[k % len(_COLOURS)], label=label)
    axis.set_xlabel(f"logit-spectrum gap (SAR distance, batches of {entries[0][1]['batch']})")
    axis.set_ylabel("PGD-20 accuracy (%)")
    axis.set_ylim(0, 100)
    gaps = [data["sar_batch_class"] for _, data in entries]
    if min(gaps) > 0 and max(gaps) / min(gaps) > 8:  # a natural model dwarfs robust ones
        axis.set_xscale("log")
        axis.set_xlim(min(gaps) / 1.5, max(gaps) * 1.5)
    else:
        axis.set_xlim(0, max(gaps) * 1.15 or 1)
    axis.legend(fontsize=7, loc="best")
    axis.set_title("The quantity SAR minimises, next to robustness")
    axis.grid(alpha=0.3)
    _save(figure, path)


def _labels_as_text(plot):
    """Labels are names from files ("$x" is a legal run name): escape matplotlib's mathtext
    marker in them, so they are drawn as written (tick labels keep their mathtext)."""
    def draw(entries: Entries, path: str | Path) -> None:
        plot([(label.replace("$", r"\$"), data) for label, data in entries], path)
    return draw


PLOTS = {part: _labels_as_text(plot) for part, plot in {
    "filter": plot_filter_sweep, "spectra": plot_spectra, "bands": plot_band_attacks,
    "heatmap": plot_heatmaps, "kernels": plot_kernels, "logits": plot_logit_gap}.items()}
