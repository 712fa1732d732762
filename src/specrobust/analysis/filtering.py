"""Filtering sweep, the paper's Table 1.

For each bandwidth ``b``: accuracy on low-pass filtered inputs (the centred ``b x b`` block of
each channel's spectrum kept, ``fourier.square_lowpass_mask``) and on high-pass filtered inputs
(that block removed except the zero frequency), for clean images and for PGD-20 images. The
high-pass keeps each channel's mean: without it every image would be centred on 0 instead of
about 0.5, far from anything the model has seen, and accuracy would collapse for a reason that
has nothing to do with which frequencies the model uses. As in the paper, the adversarial
images are made against the model on unfiltered inputs and filtered afterwards (the filter is a
preprocessing the attacker does not know about). Filtered images are *not* clipped to [0, 1]:
clipping would put energy back outside the band, and a high-pass image (its mean removed) would
lose every negative pixel.

JSON fields: ``lowpass`` and ``highpass``, each ``{"bandwidths": [b...], "clean": [acc...],
"pgd20": [acc...]}``; low-pass ``b`` equal to the image size and high-pass ``b = 0`` are the
unfiltered baseline.
"""

from __future__ import annotations

from pathlib import Path

from specrobust import fourier
from specrobust.analysis import PARTS
from specrobust.analysis.context import PGD, AnalysisContext, Attacks, Batch, per_image, tallied
from specrobust.analysis.parts import Entries, Part


def default_lowpass(size: int) -> list[int]:
    """The paper's steps of 4 at 32 pixels (32, 28, ..., 16 for CIFAR), continued down to one
    step; in proportion above 32 pixels (224, 196, ..., 28 for ImageNet)."""
    step = max(4, 4 * size // 32)
    return list(range(size, step - 1, -step))


def default_highpass(size: int) -> list[int]:
    """Removed bands of 0 to 24 cycles at 32 pixels, in proportion above."""
    scale = max(1.0, size / 32)
    return sorted({round(b * scale) for b in (0, 1, 2, 4, 8, 12, 16, 20, 24) if b * scale < size})


class FilterTally:
    """Per image, whether it is classified correctly after each filter, clean and PGD-20."""

    def __init__(self, ctx: AnalysisContext, lowpass: list[int] | None = None,
                 highpass: list[int] | None = None):
        size = min(ctx.size)
        self.ctx = ctx
        self.bandwidths = {"lowpass": default_lowpass(size) if lowpass is None else lowpass,
                           "highpass": default_highpass(size) if highpass is None else highpass}
        self.masks = {(kind, b): make(ctx.size, b, ctx.images.device)
                      for kind, make in (("lowpass", fourier.square_lowpass_mask),
                                         ("highpass", _highpass_mask))
                      for b in self.bandwidths[kind]}
        self.correct = {(*key, which): per_image(ctx) for key in self.masks
                        for which in ("clean", PGD)}
        self.attacks: Attacks = {PGD: None}

    def add(self, batch: Batch) -> None:
        for (kind, b), mask in self.masks.items():
            for which, images in (("clean", batch.clean), (PGD, batch.adversarial[PGD])):
                self.correct[kind, b, which][batch.positions] = \
                    self.ctx.correct(fourier.filter(images, mask), batch.labels)

    def result(self) -> dict:
        def accuracy(key) -> float:
            return float(self.correct[key].float().mean())

        return {kind: {"bandwidths": bandwidths,
                       **{which: [accuracy((kind, b, which)) for b in bandwidths]
                          for which in ("clean", PGD)}}
                for kind, bandwidths in self.bandwidths.items()}


def _highpass_mask(size, b, device):
    return fourier.square_highpass_mask(size, b, device, keep_mean=True)


def filter_sweep(ctx: AnalysisContext, lowpass: list[int] | None = None,
                 highpass: list[int] | None = None) -> dict:
    """The sweep alone, in a pass of its own."""
    return tallied(ctx, FilterTally(ctx, lowpass, highpass))


def headline(result: dict) -> dict[str, float]:
    low = result["lowpass"]
    numbers = {}
    for b, clean, robust in zip(low["bandwidths"], low["clean"], low["pgd20"], strict=True):
        numbers[f"LPF {b} clean"] = clean
        numbers[f"LPF {b} PGD-20"] = robust
    return numbers


def _plot_filter_sweep(entries: Entries, path: str | Path) -> None:
    from specrobust.figures import COLOURS, np, plt, save

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for k, (label, data) in enumerate(entries):
        colour = COLOURS[k % len(COLOURS)]
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
    save(figure, path)


PART = Part(
    name="filter",
    title="Accuracy on filtered inputs",
    explanation=("The paper's Table 1. Low-pass keeps the centred b x b block of each channel's "
                 "spectrum; high-pass removes it (keeping the image mean). PGD-20 images are "
                 "made on unfiltered inputs and filtered afterwards. A model that keeps its "
                 "accuracy under low-pass filtering relies on low frequencies."),
    tally=FilterTally,
    headline=headline,
    plot=_plot_filter_sweep,
)
PARTS.add(PART.name, PART)
