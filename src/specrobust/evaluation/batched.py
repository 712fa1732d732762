"""Running an attack over many images in batches, and scoring the result."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from specrobust import seeds
from specrobust.boundary import check_finite_logits
from specrobust.data.streamed import prefetched
from specrobust.machine import SINGLE, Distributed
from specrobust.models import model_mode

Attack = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]  # (x, y, seed) -> x_adv


@torch.no_grad()
def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(1) == y


@torch.no_grad()
def clean_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  batch_size: int) -> torch.Tensor:
    """Per image: classified as its label, judged ``batch_size`` images at a time."""
    # Filled in place: a list of small tensors kept batch after batch would sit between the
    # batches' large temporaries and keep the allocator from reusing their space.
    found = torch.zeros(len(x), dtype=torch.bool, device=y.device)
    starts = range(0, len(x), batch_size)
    with model_mode(model):
        for first, images in zip(starts, prefetched(x, (slice(s, s + batch_size)
                                                        for s in starts)), strict=True):
            logits = model(images)
            check_finite_logits(logits, f"test images {first} to "
                                        f"{first + len(logits) - 1}")
            found[first:first + len(logits)] = logits.argmax(1) == y[first:first + batch_size]
    return found


def attack_batches(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor,
                   targets: torch.Tensor, *, label: str, seed: int, batch_size: int,
                   skip: int = 0, shard: Distributed = SINGLE,
                   extra: Callable[[], object] | None = None,
                   ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, object]]:
    """Attack ``x[targets]`` batch by batch, starting after the first ``skip`` targets (a
    multiple of ``batch_size`` when resuming). Yields, in batch order, (targets done, their
    indices, correct, ``extra()`` as the process that attacked the batch returned it).

    With several processes (``shard``) each attacks every ``world_size``-th batch and all of
    them receive every batch's result: a batch draws its random numbers from (seed, attack,
    position), never from which process ran it, so the outcome equals one process's."""
    starts = list(range(skip, len(targets), batch_size))
    # This process's batches, decoded one ahead while it attacks (streamed images).
    my_starts = starts[shard.rank::shard.world_size]
    images = prefetched(x, (targets[start:start + batch_size] for start in my_starts))
    for first in range(0, len(starts), shard.world_size):
        rounds = starts[first:first + shard.world_size]
        mine = None
        if shard.rank < len(rounds):
            start = rounds[shard.rank]
            index = targets[start:start + batch_size]
            x_adv = attack(next(images), y[index], seeds.batch(seed, label, start))
            batch_correct = clean_correct(model, x_adv, y[index], batch_size)
            # Objects cross processes through the CPU; one process keeps them on the device.
            mine = (start, batch_correct.cpu() if shard.world_size > 1 else batch_correct,
                    extra() if extra else None)
        for result in shard.gather(mine):
            if result is None:
                continue
            start, batch_correct, payload = result
            index = targets[start:start + batch_size]
            yield start + len(index), index, batch_correct.to(x.device), payload


def robust_correct(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor,
                   already_correct: torch.Tensor, *, label: str, seed: int,
                   batch_size: int) -> torch.Tensor:
    """Per example: classified correctly clean *and* under ``attack``. Only the clean-correct
    examples are attacked (the clean image is itself a valid adversarial candidate, so the
    others count as broken without spending an attack on them)."""
    result = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    targets = already_correct.nonzero().flatten()
    for _, index, batch_correct, _ in attack_batches(model, attack, x, y, targets, label=label,
                                                     seed=seed, batch_size=batch_size):
        result[index] = batch_correct
    return result
