"""A generated dataset whose class information sits in a known frequency band.

Each class owns a few Fourier basis images (cosines at frequencies drawn from the chosen band,
distinct across classes). An example of class ``k`` is a mid-grey image plus class ``k``'s pattern
at a random strength, plus white Gaussian noise spread evenly over all frequencies:

    x = clip(0.5 + a * s * pattern_k + noise, 0, 1),   s ~ U[0.75, 1.25]

so the label can be read *only* from the chosen band. Spectral analyses therefore have a known
answer: a model trained on ``band="low"`` keeps its accuracy under low-pass filtering and loses
it under high-pass filtering, and the reverse for ``band="high"``. A small CNN learns it in
seconds. Everything is a pure function of the parameters (seeded), so it is identical on every
machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import torch

from specrobust import fourier, seeds
from specrobust.data.splits import ImageSplit
from specrobust.errors import SpecRobustError, quoted

BANDS = fourier.BANDS
# Generation holds float32 copies of every image: this many values is a few GB already.
MAX_PIXELS = 500_000_000


@dataclass(frozen=True)
class SyntheticSpec:
    band: str = "low"  # where the class signal lives: low, mid or high (thirds of Nyquist)
    size: int = 32
    channels: int = 3
    num_classes: int = 10
    n_train: int = 5000
    n_test: int = 1000
    amplitude: float = 0.12  # peak contribution of a class pattern, in [0, 1] pixel units
    noise: float = 0.08  # std of the white noise
    frequencies_per_class: int = 2
    seed: int = 0

    def __post_init__(self):
        if self.band not in BANDS:
            raise SpecRobustError(
                f"synthetic band must be one of {', '.join(BANDS)}, got {self.band!r}"
            )
        if self.size < 8 or self.channels < 1 or self.num_classes < 2:
            raise SpecRobustError("synthetic data needs size >= 8, channels >= 1, num_classes >= 2")
        if self.n_train < self.num_classes or self.n_test < self.num_classes:
            raise SpecRobustError("synthetic n_train and n_test must be at least num_classes")
        if self.size > 512 or self.channels > 16 or self.num_classes > 1000 or \
                self.frequencies_per_class < 1 or self.frequencies_per_class > 16:
            raise SpecRobustError("synthetic data allows size <= 512, channels <= 16, "
                                  "num_classes <= 1000 and frequencies_per_class in [1, 16]")
        pixels = (self.n_train + self.n_test) * self.channels * self.size ** 2
        if pixels > MAX_PIXELS:
            raise SpecRobustError(f"synthetic data of {pixels:,} pixel values is too large (at "
                                  f"most {MAX_PIXELS:,}); lower n_train, n_test or size")
        if not (math.isfinite(self.amplitude) and math.isfinite(self.noise)) or \
                self.amplitude < 0 or self.noise < 0:
            raise SpecRobustError("synthetic amplitude and noise must be finite and >= 0")
        if not 0 <= self.seed < 2**62:
            raise SpecRobustError(f"synthetic seed must lie in [0, 2**62), got {self.seed}")

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> SyntheticSpec:
        """Build from ``{"band": "high", "n_train": "2000"}``-style options (strings allowed)."""
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for key, value in options.items():
            if key not in known:
                raise SpecRobustError(
                    f"unknown synthetic option {key!r}; known: {', '.join(known)}"
                )
            default = getattr(cls(), key)
            try:
                values[key] = type(default)(value)
            except (TypeError, ValueError):
                raise SpecRobustError(
                    f"synthetic option {key} must be a {type(default).__name__}, "
                    f"got {quoted(value)}"
                ) from None
        return cls(**values)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def band_mask(spec: SyntheticSpec) -> torch.Tensor:
    """The band holding the class signal (one of :func:`fourier.default_bands`)."""
    return fourier.default_bands(spec.size)[spec.band]


def class_frequencies(spec: SyntheticSpec) -> torch.Tensor:
    """``(num_classes, frequencies_per_class, 2)`` integer frequencies (fy, fx), all distinct.

    Drawn from the band's half-plane (fy > 0, or fy == 0 and fx > 0) so that no two classes share
    a frequency or its conjugate, and away from the Nyquist row/column, whose cosines alias.
    """
    fy, fx = fourier.frequency_grid(spec.size)
    half = spec.size // 2
    usable = band_mask(spec) & ((fy > 0) | ((fy == 0) & (fx > 0)))
    usable &= (fy.abs() < half) & (fx.abs() < half)
    candidates = torch.stack([fy[usable], fx[usable]], dim=1)
    needed = spec.num_classes * spec.frequencies_per_class
    if len(candidates) < needed:
        raise SpecRobustError(
            f"the {spec.band} band of a {spec.size}x{spec.size} image has {len(candidates)} "
            f"distinct frequencies, fewer than the {needed} that {spec.num_classes} classes need"
        )
    generator = seeds.generator(seeds.synthetic(spec.seed, 0))
    order = torch.randperm(len(candidates), generator=generator)[:needed]
    return candidates[order].reshape(spec.num_classes, spec.frequencies_per_class, 2)


def class_patterns(spec: SyntheticSpec) -> torch.Tensor:
    """``(num_classes, channels, size, size)`` patterns with peak magnitude 1."""
    generator = seeds.generator(seeds.synthetic(spec.seed, 1))
    frequencies = class_frequencies(spec)
    patterns = torch.zeros(spec.num_classes, spec.channels, spec.size, spec.size)
    for k in range(spec.num_classes):
        for c in range(spec.channels):
            for fy, fx in frequencies[k].tolist():
                phase = float(torch.rand((), generator=generator)) * 2 * math.pi
                patterns[k, c] += fourier.cosine_image(spec.size, fy, fx, phase=phase)
        patterns[k] /= patterns[k].abs().max()
    return patterns


def _draw(spec: SyntheticSpec, patterns: torch.Tensor, n: int, seed: int) -> ImageSplit:
    generator = seeds.generator(seed)
    labels = torch.arange(n) % spec.num_classes  # exactly balanced
    labels = labels[torch.randperm(n, generator=generator)]
    strength = 0.75 + 0.5 * torch.rand(n, 1, 1, 1, generator=generator)
    noise = spec.noise * torch.randn(n, spec.channels, spec.size, spec.size, generator=generator)
    images = 0.5 + spec.amplitude * strength * patterns[labels] + noise
    return ImageSplit(images.clamp(0, 1).mul(255).round().to(torch.uint8), labels)


def generate(spec: SyntheticSpec) -> tuple[ImageSplit, ImageSplit]:
    patterns = class_patterns(spec)
    return (
        _draw(spec, patterns, spec.n_train, seeds.synthetic(spec.seed, 2)),
        _draw(spec, patterns, spec.n_test, seeds.synthetic(spec.seed, 3)),
    )
