"""The spectral core: the one module that knows how image spectra are laid out.

Attacks, SAR, the analyses and the plots call these functions; none of them re-derives a mask.

Conventions (every function here follows them):

* **Centred layout.** A spectrum is ``torch.fft.fft2`` over the last two axes ``(H, W)``
  followed by ``fftshift``: the zero frequency sits at index ``(H // 2, W // 2)`` and |frequency|
  grows outwards, as in the paper's figures (low frequencies in the middle).
* **Units.** Frequencies are integers in cycles per image: row ``i`` holds vertical frequency
  ``i - H // 2``, column ``j`` horizontal frequency ``j - W // 2``. Radii are Euclidean in those
  units; the largest radius that fits on both axes is ``min(H, W) // 2`` (Nyquist).
* **Normalisation.** ``norm="ortho"``, so Parseval holds exactly: ``sum |x|^2 == sum |X|^2``.
  Energies and energy shares are therefore the same whether measured in pixels or frequencies.
* **Masks.** Boolean tensors of shape ``(H, W)`` in the centred layout; they broadcast over any
  leading batch and channel axes. ``True`` keeps a frequency.

A mask that is not Hermitian-symmetric (the paper's even-sized ``b x b`` low-pass block keeps
frequency ``-b/2`` but not ``+b/2``) cannot give a real image on its own; ``filter`` takes the real
part, which is the same as applying the mask's symmetrised version with weight 1/2 on the unpaired
frequencies. Where a projection must leave *no* energy outside the band (band-limited attacks),
use ``hermitian_symmetric(mask)``, the largest symmetric mask inside it.
"""

from __future__ import annotations

import math

import torch

from specrobust.errors import SpecRobustError

Size = int | tuple[int, ...]  # a side, or (height, width) (more: the last two)

_SPATIAL = (-2, -1)


def _hw(size: Size) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else size
    if height < 1 or width < 1:
        raise SpecRobustError(f"image size must be positive, got {height}x{width}")
    return int(height), int(width)


# ---------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------


def fft2c(images: torch.Tensor) -> torch.Tensor:
    """Centred, orthonormal 2-D FFT of each channel: ``(..., H, W)`` real -> complex."""
    return torch.fft.fftshift(torch.fft.fft2(images, norm="ortho"), dim=_SPATIAL)


def ifft2c(spectrum: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft2c` (complex result; take ``.real`` for images)."""
    return torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=_SPATIAL), norm="ortho")


def power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """``|fft2c(images)|^2``, same shape as ``images``: the energy at each frequency."""
    return fft2c(images).abs().square()


def mean_amplitude_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Mean centred ``|FFT|`` over every leading axis (images, channels): shape ``(H, W)``.

    This is the quantity the paper plots for clean images, adversarial images and their
    difference.
    """
    amplitude = fft2c(images).abs()
    return amplitude.reshape(-1, *amplitude.shape[-2:]).mean(dim=0)


# ---------------------------------------------------------------------------------------------
# Frequency grids
# ---------------------------------------------------------------------------------------------


def frequency_grid(size: Size, device: torch.device | str | None = None):
    """Integer frequencies ``(fy, fx)`` at every position of the centred layout, each ``(H, W)``."""
    height, width = _hw(size)
    fy = torch.arange(height, device=device) - height // 2
    fx = torch.arange(width, device=device) - width // 2
    return torch.meshgrid(fy, fx, indexing="ij")


def radius_grid(size: Size, device: torch.device | str | None = None) -> torch.Tensor:
    """Euclidean frequency radius (cycles per image) at every position, shape ``(H, W)``."""
    fy, fx = frequency_grid(size, device)
    return torch.sqrt(fy.double().square() + fx.double().square()).float()


def max_radius(size: Size) -> int:
    """The Nyquist radius of the shorter axis: the largest ring that fits on both axes."""
    return min(_hw(size)) // 2


def radial_bins(size: Size, device: torch.device | str | None = None) -> torch.Tensor:
    """Integer ring index (radius rounded to the nearest integer) at every position."""
    return torch.floor(radius_grid(size, device) + 0.5).long()


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------


def all_pass_mask(size: Size, device: torch.device | str | None = None) -> torch.Tensor:
    """Keeps every frequency."""
    return torch.ones(_hw(size), dtype=torch.bool, device=device)


def square_lowpass_mask(
    size: Size, bandwidth: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """The paper's low-pass filter: keep the centred ``b x b`` block, zero the rest.

    The block spans frequencies ``-(b // 2) .. b - b // 2 - 1`` on each axis, which is the
    paper's slice ``[c - b/2, c + b/2)`` around the centre ``c``. ``b`` equal to the image size
    keeps everything (the paper's "no filtering" column).
    """
    height, width = _hw(size)
    if not 0 <= bandwidth <= min(height, width):
        raise SpecRobustError(
            f"low-pass bandwidth must lie in 0..{min(height, width)} for {height}x{width} images,"
            f" got {bandwidth}"
        )
    fy, fx = frequency_grid(size, device)
    low, high = -(bandwidth // 2), bandwidth - bandwidth // 2 - 1
    return (fy >= low) & (fy <= high) & (fx >= low) & (fx <= high)


def square_highpass_mask(
    size: Size, bandwidth: int, device: torch.device | str | None = None, *,
    keep_mean: bool = False,
) -> torch.Tensor:
    """The complement of :func:`square_lowpass_mask`: removes the centred ``b x b`` block.

    ``keep_mean`` keeps the zero frequency (each channel's mean) even inside the block.
    """
    mask = ~square_lowpass_mask(size, bandwidth, device)
    if keep_mean:
        height, width = _hw(size)
        mask[height // 2, width // 2] = True
    return mask


def radial_lowpass_mask(
    size: Size, radius: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """Keep frequencies with radius ``<= radius`` (cycles per image)."""
    _check_radius(radius, "radius")
    return radius_grid(size, device) <= radius


def radial_highpass_mask(
    size: Size, radius: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """Keep frequencies with radius ``> radius``: the exact complement of the radial low-pass."""
    _check_radius(radius, "radius")
    return radius_grid(size, device) > radius


def radial_band_mask(
    size: Size, inner: float, outer: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """Keep frequencies with ``inner < radius <= outer``; ``inner < 0`` includes the DC term."""
    if not outer >= inner:
        raise SpecRobustError(f"band edges must satisfy inner <= outer, got {inner} and {outer}")
    radius = radius_grid(size, device)
    return (radius > inner) & (radius <= outer)


# The names of default_bands' three bands.
BANDS = ("low", "mid", "high")


def default_bands(size: Size, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Low / mid / high radial bands that partition the spectrum.

    The edges are thirds of the Nyquist radius ``R``: low is ``r <= R/3`` (DC included), mid
    ``R/3 < r <= 2R/3``, high everything beyond, corners included. Every frequency belongs to
    exactly one band, so the three energy shares of an image add up to 1.
    """
    nyquist = max_radius(size)
    inner, outer = nyquist / 3, 2 * nyquist / 3
    return {
        "low": radial_lowpass_mask(size, inner, device),
        "mid": radial_band_mask(size, inner, outer, device),
        "high": radial_highpass_mask(size, outer, device),
    }


def _check_radius(radius: float, what: str) -> None:
    if not (isinstance(radius, int | float) and math.isfinite(radius) and radius >= 0):
        raise SpecRobustError(f"{what} must be a finite number >= 0, got {radius!r}")


def _mirror_indices(length: int, device) -> torch.Tensor:
    # Index holding frequency -f for the index holding f, periodically (so -N/2 maps to itself).
    centre = length // 2
    return (2 * centre - torch.arange(length, device=device)) % length


def hermitian_symmetric(mask: torch.Tensor) -> torch.Tensor:
    """The largest mask inside ``mask`` that contains the partner ``-f`` of each kept ``f``.

    Projecting a real image onto such a mask gives a real image exactly, with zero energy
    outside the mask.
    """
    rows = _mirror_indices(mask.shape[-2], mask.device)
    cols = _mirror_indices(mask.shape[-1], mask.device)
    mirrored = mask.index_select(-2, rows).index_select(-1, cols)
    return mask & mirrored


def is_hermitian_symmetric(mask: torch.Tensor) -> bool:
    """Whether ``mask`` keeps a frequency exactly when it keeps its mirror image."""
    return bool(torch.equal(hermitian_symmetric(mask), mask))


# ---------------------------------------------------------------------------------------------
# Filtering and energy
# ---------------------------------------------------------------------------------------------


def _check_mask(images: torch.Tensor, mask: torch.Tensor) -> None:
    if mask.dtype != torch.bool:
        raise SpecRobustError(f"a frequency mask must be a bool tensor, got {mask.dtype}")
    if tuple(mask.shape) != tuple(images.shape[-2:]):
        raise SpecRobustError(
            f"mask of shape {tuple(mask.shape)} does not match images of spatial size "
            f"{tuple(images.shape[-2:])}"
        )


def filter(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # noqa: A001
    """Keep only the frequencies in ``mask``; returns real images of the input's dtype.

    Pixel values are *not* clipped: a filtered image may leave [0, 1], and clipping would put
    energy back outside the mask. Callers that feed a model clip themselves where they want to.
    """
    _check_mask(images, mask)
    spectrum = fft2c(images)
    kept = torch.where(mask.to(images.device), spectrum, torch.zeros((), dtype=spectrum.dtype))
    return ifft2c(kept).real.to(images.dtype)


def energy_share(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of each image's spectral energy (all channels) inside ``mask``: shape ``(N,)``.

    An all-zero image has no energy anywhere; its share is reported as 0.
    """
    _check_mask(images, mask)
    power = power_spectrum(images.reshape(images.shape[0], -1, *images.shape[-2:]))
    total = power.sum(dim=(1, 2, 3))
    inside = (power * mask.to(power.device)).sum(dim=(1, 2, 3))
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)


def band_energy_shares(
    images: torch.Tensor, bands: dict[str, torch.Tensor] | None = None
) -> dict[str, float]:
    """Mean energy share of each band over a batch (``default_bands`` when none are given)."""
    bands = default_bands(tuple(images.shape[-2:]), images.device) if bands is None else bands
    return {name: float(energy_share(images, mask).mean()) for name, mask in bands.items()}


def radial_profile(images: torch.Tensor) -> torch.Tensor:
    """Spectral energy in each integer-radius ring, summed over channels, mean over images.

    ``images`` is ``(N, C, H, W)`` (or ``(N, H, W)``); the result has one entry per ring
    ``0 .. ceil(max radius)``, and sums to the mean total energy of an image (Parseval).
    """
    batch = images.reshape(images.shape[0], -1, *images.shape[-2:])
    return ring_sums(power_spectrum(batch).sum(dim=1).mean(dim=0))


def ring_sums(values: torch.Tensor) -> torch.Tensor:
    """The sum of a centred ``(H, W)`` map within each integer-radius ring ``0 .. ceil(max
    radius)`` (``radial_bins``)."""
    bins = radial_bins(tuple(values.shape[-2:]), values.device)
    profile = torch.zeros(int(bins.max()) + 1, dtype=values.dtype, device=values.device)
    return profile.index_add_(0, bins.flatten(), values.flatten())


def cosine_image(
    size: Size, fy: int, fx: int, *, phase: float = 0.0, device: torch.device | str | None = None
) -> torch.Tensor:
    """A real Fourier basis image with unit L2 norm whose energy lies at ``(fy, fx)`` and
    ``(-fy, -fx)`` only: ``cos(2 pi (fy y / H + fx x / W) + phase)``, normalised.

    This is the perturbation of the Fourier heat map (Yin et al., 2019).
    """
    height, width = _hw(size)
    y = torch.arange(height, device=device, dtype=torch.float64)[:, None]
    x = torch.arange(width, device=device, dtype=torch.float64)[None, :]
    wave = torch.cos(2 * math.pi * (fy * y / height + fx * x / width) + phase)
    norm = wave.square().sum().sqrt()
    if norm == 0:
        raise SpecRobustError(f"frequency ({fy}, {fx}) with phase {phase} gives an all-zero image")
    return (wave / norm).float()
