"""What every analysis part works on: one model, the first n test images, one budget, and the
PGD-20 adversarial images they share (computed once, on first use). Under torchrun the costly
loops (PGD's batches, the heat map's frequencies) are split across the processes
(:meth:`AnalysisContext.shared_map`); every process ends with every result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from specrobust import seeds
from specrobust.attacks import folded_for_attack, pgd
from specrobust.attacks.pgd import default_step
from specrobust.attacks.registry import preset
from specrobust.machine import SINGLE, Distributed, autocast
from specrobust.settings import Settings


@dataclass
class AnalysisContext:
    model: nn.Module  # eval mode; judges every image
    images: torch.Tensor  # (N, C, H, W) floats in [0, 1]
    labels: torch.Tensor
    eps: float
    seed: int = Settings.seed
    batch_size: int = Settings.batch_size
    progress: Callable[[str, int, int], None] | None = None
    norm: str = Settings.norm  # the threat model of every PGD here
    shard: Distributed = SINGLE
    precision: str = Settings.precision  # every PGD's arithmetic (machine.py); judged in fp32
    _attacked: nn.Module | None = field(default=None, repr=False)
    _adversarial: torch.Tensor | None = field(default=None, repr=False)

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
        return torch.cat([self.model(x).argmax(1) for _, (x,) in self.batches(images)])

    def accuracy(self, images: torch.Tensor) -> float:
        return float((self.predict(images) == self.labels).float().mean())

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(x) for _, (x,) in self.batches(images)])

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

    def pgd(self, label: str, mask: torch.Tensor | None = None) -> torch.Tensor:
        """PGD-20 against every image (not only the clean-correct ones: spectra need them all),
        seeded per batch as in `specrobust eval`. With eps 0 there is nothing to attack."""
        if self.eps == 0:
            return self.images.clone()

        steps = preset("pgd20")["steps"]  # the paper's evaluation attack, as `specrobust eval`'s

        starts = list(range(0, len(self.images), self.batch_size))
        total = len(starts) * steps  # the bar moves per gradient step: a batch can take minutes

        def attack(start: int) -> torch.Tensor:
            x = self.images[start:start + self.batch_size]
            y = self.labels[start:start + self.batch_size]
            generator = seeds.generator(seeds.batch(self.seed, label, start), x.device)
            done = start // self.batch_size * steps
            on_step = (lambda k: self.progress(label, done + k, total)) if self.progress \
                else None
            with autocast(self.precision, x.device):
                return pgd(self.attacked, x, y, self.eps, default_step(self.eps), steps,
                           mask=mask, norm=self.norm, generator=generator,
                           on_step=on_step).cpu()

        return torch.cat(self.shared_map(starts, attack)).to(self.images.device)

    @property
    def adversarial(self) -> torch.Tensor:
        """The shared PGD-20 images (filter, spectra and logits all use these)."""
        if self._adversarial is None:
            self._adversarial = self.pgd("pgd20")
        return self._adversarial
