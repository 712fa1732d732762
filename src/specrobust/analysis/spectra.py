"""Input and perturbation spectra, the paper's Fig. 2: where the attack puts its energy.

JSON fields (images: the first n test images; adversarial: their PGD-20 versions):

* ``clean_amplitude``, ``adversarial_amplitude``, ``perturbation_amplitude``: ``H x W`` lists,
  the mean centred ``|FFT|`` over images and channels (``fourier.mean_amplitude_spectrum``; low
  frequencies in the middle). The perturbation is ``adversarial - clean``.
* ``radii``: ring radii 0, 1, ... (cycles per image); ``perturbation_radial_share`` and
  ``clean_radial_share``: the share of spectral energy in each ring (sums to 1).
* ``perturbation_band_shares`` and ``clean_band_shares``: energy shares in the low, mid and
  high bands of ``fourier.default_bands`` (thirds of the Nyquist radius; they sum to 1), mean
  over images.
"""

from __future__ import annotations

import torch

from specrobust import fourier
from specrobust.analysis.context import AnalysisContext


def _radial_share(images: torch.Tensor) -> list[float]:
    profile = fourier.radial_profile(images).double()
    return (profile / profile.sum().clamp_min(1e-30)).tolist()


def spectra(ctx: AnalysisContext) -> dict:
    clean, adversarial = ctx.images, ctx.adversarial
    perturbation = adversarial - clean
    return {
        "clean_amplitude": fourier.mean_amplitude_spectrum(clean).tolist(),
        "adversarial_amplitude": fourier.mean_amplitude_spectrum(adversarial).tolist(),
        "perturbation_amplitude": fourier.mean_amplitude_spectrum(perturbation).tolist(),
        "radii": list(range(len(fourier.radial_profile(clean[:1])))),
        "perturbation_radial_share": _radial_share(perturbation),
        "clean_radial_share": _radial_share(clean),
        "perturbation_band_shares": fourier.band_energy_shares(perturbation),
        "clean_band_shares": fourier.band_energy_shares(clean),
    }
