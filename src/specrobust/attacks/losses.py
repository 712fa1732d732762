"""Losses an attack ascends: cross-entropy and the C&W margin."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from specrobust.errors import SpecRobustError

LOSSES = ("ce", "cw")


def cw_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example C&W margin ``max_{j != y} z_j - z_y`` (positive once misclassified)."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return others.max(dim=1).values - true


def attack_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str,
                targeted: bool = False) -> torch.Tensor:
    """Per-example loss that the attack *increases*. Targeted: ``labels`` are the targets and
    the loss rewards moving towards them."""
    if loss == "ce":
        value = F.cross_entropy(logits, labels, reduction="none")
    elif loss == "cw":
        value = cw_margin(logits, labels)
    else:
        raise SpecRobustError(f"unknown attack loss {loss!r}; known: {', '.join(LOSSES)}")
    return -value if targeted else value
