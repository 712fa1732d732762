"""Input and perturbation spectra, the paper's Fig. 2: where the attack puts its energy.

JSON fields (images: the first n test images; adversarial: their PGD-20 versions):

* ``clean_amplitude``, ``adversarial_amplitude``, ``perturbation_amplitude``: ``H x W`` lists,
  the mean centred ``|FFT|`` over images and channels (``fourier.mean_amplitude_spectrum``; low
  frequencies in the middle). The perturbation is ``adversarial - clean``.
* ``radii``: the inner radius of each ring (cycles per image; rings one cycle wide up to 32-pixel
  images, wider in proportion above: ``ring_width``); ``perturbation_radial_share`` and
  ``clean_radial_share``: the share of spectral energy in each ring (sums to 1).
* ``perturbation_band_shares`` and ``clean_band_shares``: energy shares in the low, mid and
  high bands of ``fourier.default_bands`` (thirds of the Nyquist radius; they sum to 1), mean
  over images.
"""

from __future__ import annotations

from pathlib import Path

import torch

from specrobust import fourier
from specrobust.analysis import PARTS
from specrobust.analysis.context import AnalysisContext
from specrobust.analysis.parts import Entries, Part


def ring_width(size: tuple[int, ...]) -> int:
    """Rings one cycle wide up to 32-pixel images; in proportion above (7 at 224), so every
    image size gets about as many rings."""
    return max(1, min(size[-2:]) // 32)


def _radial_share(images: torch.Tensor) -> list[float]:
    profile = fourier.radial_profile(images).double()
    width = ring_width(tuple(images.shape))
    if width > 1:
        profile = torch.nn.functional.pad(profile, (0, -len(profile) % width))
        profile = profile.reshape(-1, width).sum(dim=1)
    return (profile / profile.sum().clamp_min(1e-30)).tolist()


def spectra(ctx: AnalysisContext) -> dict:
    clean, adversarial = ctx.images, ctx.adversarial
    perturbation = adversarial - clean
    width = ring_width(tuple(clean.shape))
    return {
        "clean_amplitude": fourier.mean_amplitude_spectrum(clean).tolist(),
        "adversarial_amplitude": fourier.mean_amplitude_spectrum(adversarial).tolist(),
        "perturbation_amplitude": fourier.mean_amplitude_spectrum(perturbation).tolist(),
        "radii": list(range(0, len(fourier.radial_profile(clean[:1])), width)),
        "perturbation_radial_share": _radial_share(perturbation),
        "clean_radial_share": _radial_share(clean),
        "perturbation_band_shares": fourier.band_energy_shares(perturbation),
        "clean_band_shares": fourier.band_energy_shares(clean),
    }


def headline(result: dict) -> dict[str, float]:
    return {f"perturbation {band}-band share": share
            for band, share in result["perturbation_band_shares"].items()}


def _plot_spectra(entries: Entries, path: str | Path) -> None:
    from specrobust.figures import centred_extent, np, plt, save

    columns = [("clean_amplitude", "clean images"), ("adversarial_amplitude", "adversarial"),
               ("perturbation_amplitude", "perturbation (adv - clean)")]
    figure, axes = plt.subplots(len(entries), 4, figsize=(15, 3.4 * len(entries)), dpi=100,
                                squeeze=False)
    for row, (label, data) in enumerate(entries):
        for col, (key, title) in enumerate(columns):
            amplitude = np.array(data[key])
            image = axes[row, col].imshow(np.log10(amplitude + 1e-6), cmap="viridis",
                                          origin="lower",
                                          extent=centred_extent(*amplitude.shape))
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
    save(figure, path)


PART = Part(
    name="spectra",
    title="Input and perturbation spectra",
    explanation=("The paper's Fig. 2: mean centred |FFT| (low frequencies in the middle) of "
                 "clean images, PGD-20 images and the perturbation, and the perturbation's "
                 "energy per frequency ring. The attack puts its energy where the model looks."),
    compute=spectra,
    headline=headline,
    plot=_plot_spectra,
)
PARTS.add(PART.name, PART)
