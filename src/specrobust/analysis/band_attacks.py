"""Band-limited attacks: how robust is the model when PGD-20 may only perturb one band?

Each attack projects every step onto a band of ``fourier.default_bands`` (low, mid, high: thirds
of the Nyquist radius) at the same L-inf eps (see ``specrobust.attacks.pgd`` for the order of
projections). A model is vulnerable in a band where its accuracy under that band's attack is low.

JSON fields: ``clean`` (accuracy), ``unrestricted`` (PGD-20 using every frequency), ``bands``:
``{"low": acc, "mid": acc, "high": acc}``; accuracies count an image as robust only if it is also
classified correctly when clean (as `specrobust eval` does).
"""

from __future__ import annotations

from pathlib import Path

import torch

from specrobust import fourier
from specrobust.analysis import PARTS
from specrobust.analysis.context import PGD, AnalysisContext, Attacks, Batch, per_image, tallied
from specrobust.analysis.parts import Entries, Part


class BandTally:
    """Per image, whether it is classified correctly clean and under PGD-20 in each band (and
    in all of them at once)."""

    def __init__(self, ctx: AnalysisContext):
        self.ctx = ctx
        self.attacks: Attacks = {PGD: None, **{f"{PGD}-{band}": mask for band, mask in
                                      fourier.default_bands(ctx.size, ctx.images.device).items()}}
        self.clean = per_image(ctx)
        self.robust = {label: per_image(ctx) for label in self.attacks}

    def add(self, batch: Batch) -> None:
        clean_correct = self.ctx.correct(batch.clean, batch.labels)
        self.clean[batch.positions] = clean_correct
        for label in self.attacks:
            self.robust[label][batch.positions] = \
                clean_correct & self.ctx.correct(batch.adversarial[label], batch.labels)

    def result(self) -> dict:
        def accuracy(found: torch.Tensor) -> float:
            return float(found.float().mean())

        return {"clean": accuracy(self.clean), "unrestricted": accuracy(self.robust[PGD]),
                "bands": {label.removeprefix(f"{PGD}-"): accuracy(found)
                          for label, found in self.robust.items() if label != PGD}}


def band_attacks(ctx: AnalysisContext) -> dict:
    """The band-limited attacks alone, in a pass of their own."""
    return tallied(ctx, BandTally(ctx))


def headline(result: dict) -> dict[str, float]:
    return {f"PGD-20 {band} band only": accuracy for band, accuracy in result["bands"].items()}


def _plot_band_attacks(entries: Entries, path: str | Path) -> None:
    from specrobust.figures import COLOURS, np, plt, save

    groups = ["low", "mid", "high", "unrestricted", "clean"]
    figure, axis = plt.subplots(figsize=(8, 4), dpi=110)
    width = 0.8 / max(len(entries), 1)
    for k, (label, data) in enumerate(entries):
        values = [data["bands"][g] if g in data["bands"] else data[g] for g in groups]
        bars = axis.bar(np.arange(len(groups)) + k * width, 100 * np.array(values), width,
                        label=label, color=COLOURS[k % len(COLOURS)])
        axis.bar_label(bars, fmt="%.0f", fontsize=6)
    axis.set_xticks(np.arange(len(groups)) + width * (len(entries) - 1) / 2,
                    ["PGD-20, low band", "mid band", "high band", "all frequencies", "no attack"])
    axis.set_ylabel("accuracy (%)")
    axis.set_ylim(0, 105)
    axis.set_title("Robust accuracy under band-limited PGD-20 (same eps)")
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=7)
    save(figure, path)


PART = Part(
    name="bands",
    title="Band-limited attacks",
    explanation=("PGD-20 restricted to one radial band (thirds of the Nyquist radius) at the "
                 "same eps: low accuracy marks a band where the model is vulnerable."),
    tally=BandTally,
    headline=headline,
    plot=_plot_band_attacks,
)
PARTS.add(PART.name, PART)
