"""What `specrobust data inspect` reports of a dataset: split sizes, class balance, pixel
statistics (a model's mean/std) and where the spectral energy of its images lies."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from specrobust import fourier
from specrobust.data.splits import class_balanced_subset

SPECTRUM_SAMPLE = 2000  # test images, class-balanced, for the spectral figures


@dataclass(frozen=True)
class SplitCounts:
    name: str
    size: int
    image_shape: tuple[int, ...]
    fewest_per_class: int
    most_per_class: int


@dataclass(frozen=True)
class DatasetStatistics:
    splits: list[SplitCounts]
    mean: list[float]  # per channel, of the training images in [0, 1]
    std: list[float]
    sample: int  # test images the spectral figures are of
    nyquist: int
    band_shares: dict[str, float]  # of the energy, by radial band
    half_radius: int  # radius within which half of the energy lies
    ninety_radius: int


def statistics(dataset) -> DatasetStatistics:
    """The figures of ``dataset`` (a loaded ``specrobust.data.Dataset``)."""
    classes = len(dataset.class_names)
    splits = []
    for name, split in (("train", dataset.train), ("test", dataset.test)):
        counts = split.class_counts(classes)
        splits.append(SplitCounts(name, len(split), tuple(split.images.shape[1:]),
                                  int(counts.min()), int(counts.max())))
    pixels = dataset.train.images.float().div(255)
    # Spectral energy by radial band on a class-balanced sample, with the mean image removed so
    # the (huge) DC component of the average brightness does not swamp the picture.
    n = min(SPECTRUM_SAMPLE, len(dataset.test))
    sample = class_balanced_subset(dataset.test, n, classes, seed=0).as_float()
    centred = sample - sample.mean(dim=0, keepdim=True)
    profile = fourier.radial_profile(centred)
    cumulative = torch.cumsum(profile, 0) / profile.sum()
    return DatasetStatistics(
        splits, pixels.mean(dim=(0, 2, 3)).tolist(), pixels.std(dim=(0, 2, 3)).tolist(), n,
        fourier.max_radius(tuple(sample.shape[-2:])), fourier.band_energy_shares(centred),
        int(torch.searchsorted(cumulative, torch.tensor(0.5))),
        int(torch.searchsorted(cumulative, torch.tensor(0.9))))
