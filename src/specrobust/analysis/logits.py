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

from specrobust.analysis.context import AnalysisContext
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
