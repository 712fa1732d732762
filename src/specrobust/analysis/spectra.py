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
    """The clean images' spectrum once (when every model saw the same images), then per model
    the adversarial images', the perturbation's, and its energy per ring; each image column on
    one colour scale, so that models compare at a glance."""
    from specrobust.figures import centred_extent, np, plt, save

    first = np.array(entries[0][1]["clean_amplitude"])
    shared_clean = all(np.array_equal(np.array(data["clean_amplitude"]), first)
                       for _, data in entries)
    columns = [("adversarial_amplitude", "adversarial images"),
               ("perturbation_amplitude", "perturbation (adv - clean)")]
    if not shared_clean:
        columns.insert(0, ("clean_amplitude", "clean images"))
    logs = {key: [np.log10(np.array(data[key]) + 1e-6) for _, data in entries]
            for key, _ in columns + [("clean_amplitude", "")]}
    rows = len(entries) + shared_clean
    figure, axes = plt.subplots(rows, len(columns) + 1, squeeze=False, dpi=100,
                                figsize=(5 * (len(columns) + 1), 4.2 * rows))

    def spectrum(axis, values, title, low, high):
        image = axis.imshow(values, cmap="viridis", origin="lower", vmin=low, vmax=high,
                            extent=centred_extent(*values.shape))
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04).set_label(
            "log10 mean |FFT|", fontsize=10)
        axis.set_title(title, fontsize=11)
        axis.set_xlabel("horizontal frequency (cycles/image)", fontsize=10)
        axis.set_ylabel("vertical frequency (cycles/image)", fontsize=10)

    if shared_clean:
        values = logs["clean_amplitude"][0]
        spectrum(axes[0, 0], values, "clean images (the same for every model)",
                 values.min(), values.max())
        for axis in axes[0, 1:]:
            axis.axis("off")
    for row, (label, data) in enumerate(entries, start=int(shared_clean)):
        for col, (key, title) in enumerate(columns):
            column = logs[key]
            spectrum(axes[row, col], column[row - shared_clean], f"{label}: {title}",
                     min(v.min() for v in column), max(v.max() for v in column))
        axis = axes[row, len(columns)]
        axis.plot(data["radii"], 100 * np.array(data["perturbation_radial_share"]), "-o",
                  markersize=3, color="tab:red", label="perturbation")
        axis.plot(data["radii"], 100 * np.array(data["clean_radial_share"]), "-", color="grey",
                  label="clean images")
        shares = data["perturbation_band_shares"]
        axis.set_title(f"{label}: perturbation energy per ring\nlow / mid / high band: "
                       + " / ".join(f"{100 * shares[b]:.0f}%" for b in ("low", "mid", "high")),
                       fontsize=11)
        axis.set_xlabel("frequency radius (cycles/image)", fontsize=10)
        axis.set_ylabel("share of energy (%)", fontsize=10)
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=9)
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
