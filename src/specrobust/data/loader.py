"""A device-side batch loader: the whole split lives on the device as uint8, and shuffling,
cropping and flipping are tensor operations on whole batches (no per-image Python).

Every epoch's order and augmentation are drawn from a generator seeded with ``(seed, epoch)``,
so an epoch is reproducible on its own; this is what lets an interrupted run resume bit-exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from specrobust import seeds
from specrobust.data.splits import ImageSplit
from specrobust.errors import SpecRobustError


@dataclass(frozen=True)
class Augment:
    """Random crop after zero padding (``crop_padding`` pixels a side) and horizontal flips."""

    crop_padding: int = 0
    hflip: bool = False


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Each image zero-padded by ``padding`` then cropped back at its own random offset."""
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n, 1), generator=generator,
                            device=images.device)
    rows = (offsets[0] + torch.arange(h, device=images.device))[:, None, :, None]  # (n,1,h,1)
    cols = (offsets[1] + torch.arange(w, device=images.device))[:, None, None, :]  # (n,1,1,w)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


class DeviceLoader:
    """Batches of ``(images float32 in [0,1], labels int64)`` on ``device``.

    ``shuffle`` draws a fresh seeded permutation per epoch; ``drop_last`` drops a short final
    batch (useful in training, where batch-norm dislikes tiny batches). Call ``set_epoch`` before
    iterating to pick the epoch (the default counts up by one per full pass).
    """

    def __init__(
        self,
        split: ImageSplit,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: Augment | None = None,
        drop_last: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ):
        """``rank`` / ``world_size``: data-parallel sharding; every process draws the same
        epoch permutation and takes every ``world_size``-th example of it from ``rank`` on."""
        if batch_size < 1:
            raise SpecRobustError(f"batch size must be >= 1, got {batch_size}")
        if len(split) == 0:
            raise SpecRobustError("cannot load batches from an empty split")
        self.device = torch.device(device)
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment or Augment()
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self.rank, self.world_size = rank, world_size

    def _shard_size(self) -> int:
        return len(range(self.rank, len(self.labels), self.world_size))

    def __len__(self) -> int:
        full, rest = divmod(self._shard_size(), self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        # One stream per (seed, epoch), on the data's device: an epoch's order and augmentation
        # depend on nothing else, so resuming at epoch e replays exactly what e would have seen.
        return seeds.generator(seeds.data_epoch(self.seed, self.epoch), self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = self._generator()
        n = len(self.labels)
        order = (
            torch.randperm(n, generator=generator, device=self.device)
            if self.shuffle
            else torch.arange(n, device=self.device)
        )[self.rank::self.world_size]
        for batch in range(len(self)):
            index = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            images = self.images[index].float().div_(255)
            if self.augment.crop_padding:
                images = random_crop(images, self.augment.crop_padding, generator)
            if self.augment.hflip:
                images = random_hflip(images, generator)
            yield images, self.labels[index]
        self.epoch += 1
