"""Where every random stream's seed comes from: the config's (or the evaluation's) seed and
the position of the work it serves. Each stream depends on nothing else, so an interrupted run
resumed later, or work dealt to several processes, draws exactly the numbers one uninterrupted
process would.

Every stream's seed is a hash of (seed, what the stream is for, its position): streams of
different purposes, epochs, steps or batches never share a seed (short of a 64-bit hash
collision), however many steps an epoch has. (Linear arithmetic such as ``seed * p + epoch * q
+ step`` makes adjacent epochs' streams meet once an epoch has more than q steps.)
"""

from __future__ import annotations

import hashlib

import torch


def generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def derive(seed: int, purpose: str, *position: int | str) -> int:
    """The seed of the stream for ``purpose`` at ``position``, below 2**63."""
    return _hashed(seed, purpose, *position)


def _hashed(*fields: int | str) -> int:
    text = ":".join(map(str, fields))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def batch(seed: int, label: str, start: int) -> int:
    """An evaluation batch: (evaluation seed, attack label, first target index). Hashed as
    ``seed:label:start`` (three fields, where :func:`derive` writes at least the purpose's
    name and one position), as evaluation records have been since they were resumable."""
    return _hashed(seed, label, start)


def training_step(seed: int, epoch: int, step: int) -> int:
    """The training attack of one step (steps from 1,000,000 on: the averaged model's batch-norm
    pass after the epoch)."""
    return derive(seed, "training step", epoch, step)


def data_epoch(seed: int, epoch: int) -> int:
    """One epoch's order and augmentation."""
    return derive(seed, "data epoch", epoch)


def validation(seed: int, epoch: int, start: int) -> int:
    """The validation PGD of an epoch, per batch of held-out images."""
    return derive(seed, "validation", epoch, start)


def data_split(seed: int) -> int:
    """The permutation that splits training from validation images, and class-balanced
    subsets."""
    return derive(seed, "data split")


def synthetic(seed: int, part: int) -> int:
    """The generated dataset's draws: 0 and 1 its class patterns, 2 and 3 its two splits."""
    return derive(seed, "synthetic", part)
