"""Test images decoded batch by batch when indexed: what `specrobust eval` attacks, so that its
memory is bounded by the batch rather than by the number of images (a folder of JPEGs, ImageNet).

``StreamedImages`` behaves, where the evaluation uses it, as the float tensor of all n images
would: ``len``, ``shape``, ``device``, and indexing by a slice or a tensor of positions, which
decodes just those images and returns them as floats in [0, 1] on the device. Decoding is
deterministic, so every batch equals the rows of the tensor that would have been held.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class StreamedImages:
    """``count`` images of ``image_shape`` that ``decode(positions)`` returns as uint8."""

    def __init__(self, decode: Callable[[list[int]], torch.Tensor], count: int,
                 image_shape: tuple[int, ...], device: torch.device | str = "cpu"):
        self._decode, self.count = decode, count
        self.image_shape, self.device = tuple(image_shape), torch.device(device)

    def __len__(self) -> int:
        return self.count

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.count, *self.image_shape))

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            positions = list(range(self.count))[key]
        else:
            positions = torch.as_tensor(key).flatten().tolist()
        if not positions:
            return torch.empty((0, *self.image_shape), device=self.device)
        return self._decode(positions).to(self.device).float().div_(255)
