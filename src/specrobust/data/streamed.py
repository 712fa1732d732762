"""Test images decoded batch by batch when indexed: what `specrobust eval` and `specrobust
analyze` attack, so that their memory is bounded by the batch rather than by the number of images
(a folder of JPEGs, ImageNet).

``StreamedImages`` behaves, where the evaluation uses it, as the float tensor of all n images
would: ``len``, ``shape``, ``device``, and indexing by a slice or a tensor of positions, which
decodes just those images and returns them as floats in [0, 1] on the device. Decoding is
deterministic, so every batch equals the rows of the tensor that would have been held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

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
            positions = list(range(self.count)[key])  # a range sliced: no list of all n
        else:
            positions = torch.as_tensor(key).flatten().tolist()
        if not positions:
            return torch.empty((0, *self.image_shape), device=self.device)
        return self._decode(positions).to(self.device).float().div_(255)


# Test images: a float tensor, or the same decoded a batch at a time when indexed.
Images = torch.Tensor | StreamedImages


def prefetched(images: Images, keys: Iterable) -> Iterator[torch.Tensor]:
    """``images[key]`` for each key in order. Streamed images are decoded one batch ahead, in a
    thread, while the caller works on the current batch (decoding JPEGs takes about as long as
    a cheap attack); never more than that one batch is waiting. A tensor is simply indexed."""
    if not isinstance(images, StreamedImages):
        yield from (images[key] for key in keys)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        waiting: Future | None = None
        for key in keys:
            following = pool.submit(images.__getitem__, key)
            if waiting is not None:
                yield waiting.result()
            waiting = following
        if waiting is not None:
            yield waiting.result()
