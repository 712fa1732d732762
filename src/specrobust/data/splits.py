"""In-memory dataset splits and the ways the paper carves them up."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from specrobust import seeds
from specrobust.errors import SpecRobustError


@dataclass(frozen=True)
class ImageSplit:
    """A split held in memory: ``images`` uint8 ``(N, C, H, W)``, ``labels`` int64 ``(N,)``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 NCHW, got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{self.images.shape[0]} images but labels of shape "
                             f"{tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def take(self, indices: torch.Tensor) -> ImageSplit:
        return ImageSplit(self.images[indices], self.labels[indices])

    def class_counts(self, num_classes: int) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=num_classes)

    def as_float(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Images as float32 in [0, 1] on ``device``."""
        return self.images.to(device).float().div_(255)


def _generator(seed: int) -> torch.Generator:
    return seeds.generator(seeds.data_split(int(seed)))


def train_val_split(
    split: ImageSplit, val_fraction: float = 0.1, seed: int = 0
) -> tuple[ImageSplit, ImageSplit]:
    """Split by a seeded permutation, as the paper does (9:1 of the training set by default)."""
    if not 0 < val_fraction < 1:
        raise SpecRobustError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    order = torch.randperm(len(split), generator=_generator(seed))
    n_val = round(len(split) * val_fraction)
    if n_val == 0 or n_val == len(split):
        raise SpecRobustError(
            f"val_fraction {val_fraction} of {len(split)} examples leaves an empty split"
        )
    return split.take(order[n_val:]), split.take(order[:n_val])


def class_balanced_subset(
    split: ImageSplit, n: int, num_classes: int, seed: int = 0
) -> ImageSplit:
    """``n`` examples, as equal a number from every class as ``n`` allows, drawn with ``seed``.

    The first ``n % num_classes`` classes get one extra example. The result is shuffled, so a
    prefix of it is still roughly balanced.
    """
    if not 0 < n <= len(split):
        raise SpecRobustError(f"subset size must lie in 1..{len(split)}, got {n}")
    generator = _generator(seed)
    per_class = [n // num_classes + (1 if c < n % num_classes else 0) for c in range(num_classes)]
    chosen = []
    for label, wanted in enumerate(per_class):
        members = torch.nonzero(split.labels == label).flatten()
        if len(members) < wanted:
            raise SpecRobustError(
                f"class {label} has only {len(members)} examples; cannot draw {wanted} of them "
                f"for a class-balanced subset of {n}"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:wanted]])
    picked = torch.cat(chosen)
    return split.take(picked[torch.randperm(len(picked), generator=generator)])
