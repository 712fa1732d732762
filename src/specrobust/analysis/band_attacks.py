"""Band-limited attacks: how robust is the model when PGD-20 may only perturb one band?

Each attack projects every step onto a band of ``fourier.default_bands`` (low, mid, high: thirds
of the Nyquist radius) at the same L-inf eps (see ``specrobust.attacks.pgd`` for the order of
projections). A model is vulnerable in a band where its accuracy under that band's attack is low.

JSON fields: ``clean`` (accuracy), ``unrestricted`` (PGD-20 using every frequency), ``bands``:
``{"low": acc, "mid": acc, "high": acc}``; accuracies count an image as robust only if it is also
classified correctly when clean (as `specrobust eval` does).
"""

from __future__ import annotations

from specrobust import fourier
from specrobust.analysis.context import AnalysisContext


def band_attacks(ctx: AnalysisContext) -> dict:
    clean_correct = ctx.predict(ctx.images) == ctx.labels

    def robust(adversarial) -> float:
        return float((clean_correct & (ctx.predict(adversarial) == ctx.labels)).float().mean())

    bands = fourier.default_bands(ctx.size, ctx.images.device)
    return {
        "clean": float(clean_correct.float().mean()),
        "unrestricted": robust(ctx.adversarial),
        "bands": {name: robust(ctx.pgd(f"pgd20-{name}", mask)) for name, mask in bands.items()},
    }
