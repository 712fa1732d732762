"""What every analysis part works on: one model, the first n test images, one budget, and one
pass over those images in order that makes each batch's PGD-20 images once for every part that
asks (:meth:`AnalysisContext.tally`). A part in that pass keeps running sums and per-example
outcomes (a :class:`Tally`), never the images, so memory is bounded by the batch, not by n.

Under torchrun the costly loops (the pass's attacks, the heat map's frequencies) are split
across the processes; every process ends with every result."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from specrobust import seeds
from specrobust.attacks import folded_for_attack, pgd
from specrobust.attacks.pgd import default_step
from specrobust.attacks.registry import preset
from specrobust.data.streamed import Images, prefetched
from specrobust.evaluation.batched import correct
from specrobust.machine import SINGLE, Distributed, autocast
from specrobust.settings import Settings

PGD = "pgd20"  # the paper's evaluation attack, as `specrobust eval`'s; band-limited: "pgd20-low"
Attacks = dict[str, torch.Tensor | None]  # attack label -> its band mask (None: every frequency)


@dataclass(frozen=True)
class Batch:
    """One batch of the test images in the pass, with the PGD-20 images the tallies asked for."""

    start: int  # the position of its first image among the n
    clean: torch.Tensor  # floats in [0, 1]
    labels: torch.Tensor
    adversarial: dict[str, torch.Tensor]  # attack label -> this batch's adversarial images

    @property
    def positions(self) -> slice:
        """Where its images are among the n: the rows of a :func:`per_image` store."""
        return slice(self.start, self.start + len(self.labels))


def per_image(ctx: AnalysisContext, dtype: torch.dtype = torch.bool) -> torch.Tensor:
    """A value for each of the n images, for a tally to fill batch by batch (``batch.positions``).
    Allocated once: small tensors kept batch after batch would sit between each batch's large
    temporaries and keep the allocator from reusing their space, and memory would grow with n."""
    return torch.zeros(len(ctx.images), dtype=dtype, device=ctx.images.device)


class Tally(Protocol):
    """A part's running state over the pass: it names the attacks it needs, is given every batch
    in order, and then gives its result."""

    attacks: Attacks

    def add(self, batch: Batch) -> None: ...

    def result(self) -> dict: ...


@dataclass
class AnalysisContext:
    model: nn.Module  # eval mode; judges every image
    images: Images  # (N, C, H, W) floats in [0, 1]
    labels: torch.Tensor
    eps: float
    seed: int = Settings.seed
    batch_size: int = Settings.batch_size
    progress: Callable[[str, int, int], None] | None = None
    norm: str = Settings.norm  # the threat model of every PGD here
    shard: Distributed = SINGLE
    precision: str = Settings.precision  # every PGD's arithmetic (machine.py); judged in fp32
    _attacked: nn.Module | None = field(default=None, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])

    @property
    def attacked(self) -> nn.Module:
        """The model attacks run on: batch norm folded in (same function, faster)."""
        if self._attacked is None:
            self._attacked = folded_for_attack(self.model)
        return self._attacked

    def batches(self, *tensors: torch.Tensor):
        for start in range(0, len(tensors[0]), self.batch_size):
            yield start, tuple(t[start:start + self.batch_size] for t in tensors)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """The model's classes for held images, judged a batch at a time."""
        return torch.cat([self.model(x).argmax(1) for _, (x,) in self.batches(images)])

    def correct(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per image of one batch: classified as its label."""
        return correct(self.model, images, labels)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """The model's logits for one batch."""
        return self.model(images)

    def shared_map(self, items: list, compute: Callable) -> list:
        """``[compute(item) for item in items]``, the items dealt round-robin to the processes
        and the results gathered in item order. ``compute`` must depend on the item alone."""
        if self.shard.world_size == 1:
            return [compute(item) for item in items]
        mine = {k: compute(item) for k, item in enumerate(items)
                if k % self.shard.world_size == self.shard.rank}
        results: dict = {}
        for part in self.shard.gather(mine):
            results.update(part)
        return [results[k] for k in range(len(items))]

    def tally(self, tallies: dict[str, Tally]) -> dict[str, dict]:
        """Feed every tally every batch of the pass (each attack any of them needs made once
        per batch), then collect their results by name."""
        attacks: Attacks = {}
        for each in tallies.values():
            attacks |= each.attacks
        for batch in self.stream(attacks):
            for each in tallies.values():
                each.add(batch)
        return {name: each.result() for name, each in tallies.items()}

    def stream(self, attacks: Attacks) -> Iterator[Batch]:
        """The test images batch by batch in order, each with its PGD-20 images under every
        attack in ``attacks`` (against every image, not only the clean-correct ones: spectra
        need them all). With several processes each attacks every ``world_size``-th batch and
        every process receives every batch."""
        starts = list(range(0, len(self.images), self.batch_size))
        clean = prefetched(self.images, (slice(s, s + self.batch_size) for s in starts))
        world = self.shard.world_size
        for first in range(0, len(starts), world):
            round_starts = starts[first:first + world]
            images = [next(clean) for _ in round_starts]  # every process: the tallies see all
            labels = [self.labels[s:s + self.batch_size] for s in round_starts]
            mine = None
            if self.shard.rank < len(round_starts):
                k = self.shard.rank
                mine = {label: self._attack(label, mask, images[k], labels[k], round_starts[k],
                                            len(starts))
                        for label, mask in attacks.items()}
                if world > 1:  # objects cross processes through the CPU
                    mine = {label: x.cpu() for label, x in mine.items()}
            for k, adversarial in enumerate(self.shard.gather(mine)[:len(round_starts)]):
                yield Batch(round_starts[k], images[k], labels[k],
                            {label: x.to(images[k].device) for label, x in adversarial.items()})

    def _attack(self, label: str, mask: torch.Tensor | None, x: torch.Tensor, y: torch.Tensor,
                start: int, batches: int) -> torch.Tensor:
        """PGD-20 against one batch, seeded by (seed, attack, position) as in `specrobust
        eval`, so the images do not depend on the batches before or on the process. With eps 0
        there is nothing to attack."""
        if self.eps == 0:
            return x.clone()
        steps = preset(PGD)["steps"]
        generator = seeds.generator(seeds.batch(self.seed, label, start), x.device)
        done, total = start // self.batch_size * steps, batches * steps
        # The bar moves per gradient step: one batch can take minutes on a large model.
        on_step = (lambda k: self.progress(label, done + k, total)) if self.progress else None
        with autocast(self.precision, x.device):
            return pgd(self.attacked, x, y, self.eps, default_step(self.eps), steps, mask=mask,
                       norm=self.norm, generator=generator, on_step=on_step)


def tallied(ctx: AnalysisContext, tally: Tally) -> dict:
    """One tally's result from a pass of its own (a part computed alone)."""
    return ctx.tally({"part": tally})["part"]
