"""Where every random stream's seed comes from: the config's (or the evaluation's) seed and
the position of the work it serves. Each stream depends on nothing else, so an interrupted run
resumed later, or work dealt to several processes, draws exactly the numbers one uninterrupted
process would.

The training streams keep the arithmetic they were introduced with (not the hash that
evaluation uses): changing it would change the random draws of every run trained so far, and of
such a run resumed by newer code.
"""

from __future__ import annotations

import hashlib

import torch

_MODULUS = 2**63


def generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def batch(seed: int, label: str, start: int) -> int:
    """An evaluation batch: (evaluation seed, attack label, first target index)."""
    digest = hashlib.sha256(f"{seed}:{label}:{start}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def training_step(seed: int, epoch: int, step: int) -> int:
    """The training attack of one step (steps from 1,000,000 on: the averaged model's batch-norm
    pass after the epoch)."""
    return (seed * 1_000_003 + epoch * 10_007 + step) % _MODULUS


def data_epoch(seed: int, epoch: int) -> int:
    """One epoch's order and augmentation."""
    return (seed * 1_000_003 + epoch) % _MODULUS


def validation(seed: int, epoch: int, start: int) -> int:
    """The validation PGD of an epoch, per batch of held-out images."""
    return (seed * 7919 + epoch + start) % _MODULUS


def data_split(seed: int) -> int:
    """The permutation that splits training from validation images, and class-balanced
    subsets."""
    return seed % _MODULUS


def synthetic(seed: int, part: int) -> int:
    """The generated dataset's draws: 0 and 1 its class patterns, 2 and 3 its two splits."""
    return (seed + part) % _MODULUS
