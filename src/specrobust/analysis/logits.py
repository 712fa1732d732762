"""The logit-spectrum gap: the quantity SAR minimises, measured on test data.

``sar_loss`` (``specrobust.sar``) between the logits of clean and PGD-20 images, over
consecutive whole batches of ``batch`` images as in training (the authors' 2-D DFT over batch and
classes; ``batch_class``), and per image (``class``: a DFT over the classes only, independent of
how the batch is formed). Shown next to robust accuracy: SAR's bet is that a smaller gap goes
with more robustness.

JSON fields: ``sar_batch_class`` (mean over batches), ``sar_class``, ``batch``,
``l1_logit_gap`` (mean |z_adv - z_clean| without a transform, for scale), ``clean`` and
``pgd20`` (accuracies of the same images).
"""

from __future__ import annotations

from pathlib import Path

import torch

from specrobust.analysis import PARTS
from specrobust.analysis.context import PGD, AnalysisContext, Attacks, Batch, per_image, tallied
from specrobust.analysis.parts import Entries, Part
from specrobust.sar import sar_loss

TRAINING_BATCH = 128


class LogitTally:
    """SAR's distance over each whole group of ``batch`` consecutive images (the logits of at
    most one group and one batch held), the per-image distances and the logit gaps summed, and
    per image whether it is classified correctly clean and under PGD-20."""

    def __init__(self, ctx: AnalysisContext, batch: int = TRAINING_BATCH):
        self.ctx, self.batch, self.n = ctx, batch, len(ctx.images)
        self.waiting: list[tuple[torch.Tensor, torch.Tensor]] = []  # logits not yet grouped
        self.group_gaps: list[float] = []
        self.class_gap = self.l1_gap = 0.0  # sums over images, and over their logits
        self.logits = 0
        self.correct = {"clean": per_image(ctx), PGD: per_image(ctx)}
        self.attacks: Attacks = {PGD: None}

    def add(self, batch: Batch) -> None:
        clean, adversarial = self.ctx.logits(batch.clean), self.ctx.logits(batch.adversarial[PGD])
        self.correct["clean"][batch.positions] = clean.argmax(1) == batch.labels
        self.correct[PGD][batch.positions] = adversarial.argmax(1) == batch.labels
        self.class_gap += float(sar_loss(clean, adversarial, axes="class")) * len(clean)
        self.l1_gap += float((adversarial - clean).abs().double().sum())
        self.logits += clean.numel()
        self.waiting.append((clean, adversarial))
        clean, adversarial = self._waiting()
        # Whole groups only (the unnormalised DFT grows with the group), unless n makes none.
        whole = len(clean) - len(clean) % self.batch
        for start in range(0, whole, self.batch):
            self.group_gaps.append(float(sar_loss(clean[start:start + self.batch],
                                                  adversarial[start:start + self.batch])))
        self.waiting = [(clean[whole:], adversarial[whole:])]

    def _waiting(self) -> tuple[torch.Tensor, torch.Tensor]:
        clean, adversarial = zip(*self.waiting, strict=True)
        return torch.cat(clean), torch.cat(adversarial)

    def result(self) -> dict:
        if not self.group_gaps:  # fewer images than one group: all of them are the one group
            self.group_gaps.append(float(sar_loss(*self._waiting())))
        return {
            "batch": self.batch,
            "sar_batch_class": sum(self.group_gaps) / len(self.group_gaps),
            "sar_class": self.class_gap / self.n,
            "l1_logit_gap": self.l1_gap / self.logits,
            **{name: float(found.float().mean())
               for name, found in self.correct.items()},
        }


def logit_gap(ctx: AnalysisContext, batch: int = TRAINING_BATCH) -> dict:
    """The gap alone, in a pass of its own."""
    return tallied(ctx, LogitTally(ctx, batch))


def headline(result: dict) -> dict[str, float]:
    return {"logit-spectrum gap": result["sar_batch_class"]}


def _plot_logit_gap(entries: Entries, path: str | Path) -> None:
    from specrobust.figures import COLOURS, plt, save

    figure, axis = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    for k, (label, data) in enumerate(entries):
        axis.scatter(data["sar_batch_class"], 100 * data["pgd20"], s=40,
                     color=COLOURS[k % len(COLOURS)], label=label)
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
    save(figure, path)


PART = Part(
    name="logits",
    title="Logit-spectrum gap",
    explanation=("SAR's distance between the DFTs of clean and PGD-20 logits (batches of 128, as "
                 "in training), next to PGD-20 accuracy."),
    tally=LogitTally,
    headline=headline,
    plot=_plot_logit_gap,
)
PARTS.add(PART.name, PART)
