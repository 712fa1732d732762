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

from specrobust.analysis import PARTS
from specrobust.analysis.context import AnalysisContext
from specrobust.analysis.parts import Entries, Part
from specrobust.sar import sar_loss

TRAINING_BATCH = 128


def logit_gap(ctx: AnalysisContext, batch: int = TRAINING_BATCH) -> dict:
    clean, adversarial = ctx.logits(ctx.images), ctx.logits(ctx.adversarial)
    # Whole batches only (the unnormalised DFT grows with the batch), unless there is none.
    starts = range(0, max(len(clean) - batch, 0) + 1, batch) if len(clean) >= batch else [0]
    batch_class = [float(sar_loss(clean[i:i + batch], adversarial[i:i + batch]))
                   for i in starts]
    return {
        "batch": batch,
        "sar_batch_class": sum(batch_class) / len(batch_class),
        "sar_class": float(sar_loss(clean, adversarial, axes="class")),
        "l1_logit_gap": float((adversarial - clean).abs().mean()),
        "clean": float((clean.argmax(1) == ctx.labels).float().mean()),
        "pgd20": float((adversarial.argmax(1) == ctx.labels).float().mean()),
    }


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
    compute=logit_gap,
    headline=headline,
    plot=_plot_logit_gap,
)
PARTS.add(PART.name, PART)
