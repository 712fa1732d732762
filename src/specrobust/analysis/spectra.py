"""Input and perturbation spectra, the paper's Fig. 2: where the attack puts its energy.

JSON fields (images: the first n test images; adversarial: their PGD-20 versions):

* ``clean_amplitude``, ``adversarial_amplitude``, ``perturbation_amplitude``: ``H x W`` lists,
  the mean centred ``|FFT|`` over images and channels (``fourier.mean_amplitude_spectrum``,
  summed batch by batch; low frequencies in the middle). The perturbation is
  ``adversarial - clean``.
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
from specrobust.analysis.context import PGD, AnalysisContext, Attacks, Batch, per_image, tallied
from specrobust.analysis.parts import Entries, Part


def ring_width(size: tuple[int, ...]) -> int:
    """Rings one cycle wide up to 32-pixel images; in proportion above (7 at 224), so every
    image size gets about as many rings."""
    return max(1, min(size[-2:]) // 32)


class SpectraTally:
    """Running sums of the amplitude and energy spectra of the clean images, their PGD-20
    versions and the perturbations, and each image's energy share per band."""

    def __init__(self, ctx: AnalysisContext):
        self.size = ctx.size
        self.bands = fourier.default_bands(self.size, ctx.images.device)
        # Sums in float64: over 50,000 images a float32 sum would lose the small ones.
        def zeros() -> torch.Tensor:
            return torch.zeros(self.size, dtype=torch.float64, device=ctx.images.device)

        self.amplitude = {name: zeros() for name in ("clean", "adversarial", "perturbation")}
        self.energy = {name: zeros() for name in ("clean", "perturbation")}  # per frequency
        self.shares = {name: {band: per_image(ctx, torch.float32) for band in self.bands}
                       for name in self.energy}
        self.channels, self.images = ctx.images.shape[1], 0
        self.attacks: Attacks = {PGD: None}

    def add(self, batch: Batch) -> None:
        clean, adversarial = batch.clean, batch.adversarial[PGD]
        for name, images in (("clean", clean), ("adversarial", adversarial),
                             ("perturbation", adversarial - clean)):
            amplitude = fourier.fft2c(images).abs()
            self.amplitude[name] += amplitude.double().sum(dim=(0, 1))
            if name in self.energy:
                self.energy[name] += amplitude.square().double().sum(dim=(0, 1))
                for band, mask in self.bands.items():
                    self.shares[name][band][batch.positions] = fourier.energy_share(images,
                                                                                    mask)
        self.images += len(clean)

    def result(self) -> dict:
        width = ring_width(self.size)

        def band_shares(name: str) -> dict[str, float]:
            return {band: float(values.mean())
                    for band, values in self.shares[name].items()}

        return {
            **{f"{name}_amplitude": (total / (self.images * self.channels)).float().tolist()
               for name, total in self.amplitude.items()},
            "radii": list(range(0, len(fourier.ring_sums(torch.zeros(self.size))), width)),
            "perturbation_radial_share": self._radial_share(self.energy["perturbation"]),
            "clean_radial_share": self._radial_share(self.energy["clean"]),
            "perturbation_band_shares": band_shares("perturbation"),
            "clean_band_shares": band_shares("clean"),
        }

    def _radial_share(self, energy: torch.Tensor) -> list[float]:
        """The share of the energy in each ring of ``ring_width`` cycles."""
        profile = fourier.ring_sums(energy / self.images)
        width = ring_width(self.size)
        if width > 1:
            profile = torch.nn.functional.pad(profile, (0, -len(profile) % width))
            profile = profile.reshape(-1, width).sum(dim=1)
        return (profile / profile.sum().clamp_min(1e-30)).tolist()


def spectra(ctx: AnalysisContext) -> dict:
    """The spectra alone, in a pass of their own."""
    return tallied(ctx, SpectraTally(ctx))


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
    tally=SpectraTally,
    headline=headline,
    plot=_plot_spectra,
)
PARTS.add(PART.name, PART)
