"""The paper's "understanding" half, for any checkpoint: what a model uses of the spectrum and
where attacks go.

Parts (each writes ``<part>.json`` and ``<part>.png`` into the analysis directory):

=========  ====================================================================================
filter     the paper's Table 1: accuracy on low-pass (keep the centred b x b block) and high-pass
           (remove it) filtered inputs, clean and PGD-20, for a list of bandwidths b
spectra    the paper's Fig. 2: mean centred |FFT| of clean images, adversarial images and their
           difference; the perturbation's radial energy profile and low/mid/high band shares
bands      robust accuracy when PGD-20 may only use the low, the mid or the high band
heatmap    Fourier heat map (Yin et al. 2019): error rate under one added Fourier basis image of
           fixed L2 norm, for every frequency (u, v)
kernels    the paper's Fig. 1: the first convolution's kernels and how smooth they are
logits     the logit-spectrum gap: SAR's distance between clean and adversarial logits
=========  ====================================================================================

Each part is one ``analysis.parts.Part`` defined in its own module (a tally over the one
shared pass over the test images, or a compute; options, headline numbers, figure, title,
explanation); ``PARTS`` holds them in report order. The JSON fields
of each part are documented in its module; accuracies and shares are fractions in [0, 1],
frequencies are in cycles per image (see ``specrobust.fourier``).
"""

from __future__ import annotations

from pathlib import Path

from specrobust.registry import Registry

# Part name -> the module that defines and registers it, in the order reports show them: adding
# a part is adding a module and its line here. Names are known without importing anything (the
# CLI's help); a part's module is imported when the part is first used.
PARTS: Registry = Registry("analysis part", lazy={
    "filter": "specrobust.analysis.filtering", "spectra": "specrobust.analysis.spectra",
    "bands": "specrobust.analysis.band_attacks", "heatmap": "specrobust.analysis.heatmap",
    "kernels": "specrobust.analysis.kernels", "logits": "specrobust.analysis.logits"})


def draw(part: str, entries: list[tuple[str, dict]], path: str | Path) -> None:
    """A part's figure of one model or several side by side. Labels are names from files ("$x"
    is a legal run name): matplotlib's mathtext marker is escaped in them, so they are drawn as
    written (tick labels keep their mathtext)."""
    PARTS[part].plot([(label.replace("$", r"\$"), data) for label, data in entries], path)
