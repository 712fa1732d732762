"""Normalisation inside the model, so that every model takes [0, 1] images and attacks never
need to know about mean and std."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from specrobust.errors import SpecRobustError


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; the identity when both are None (the authors' default)."""

    def __init__(self, channels: int, mean: Sequence[float] | None, std: Sequence[float] | None):
        super().__init__()
        mean = [0.0] * channels if mean is None else list(mean)
        std = [1.0] * channels if std is None else list(std)
        if len(mean) != channels or len(std) != channels:
            raise SpecRobustError(
                f"mean and std need {channels} values (one per channel), got {len(mean)} and "
                f"{len(std)}"
            )
        if any(s <= 0 for s in std):
            raise SpecRobustError(f"std values must be > 0, got {std}")
        self.register_buffer("mean", torch.tensor(mean).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, channels, 1, 1))
        self._update_identity()

    def _update_identity(self) -> None:
        # Skipping the arithmetic keeps the identity case free; decided once, not every call.
        self.identity = bool((self.mean == 0).all() and (self.std == 1).all())

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._update_identity()  # loaded mean/std may differ from the constructor's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.identity else (x - self.mean) / self.std
