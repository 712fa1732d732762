"""Choosing the device a command runs on."""

from __future__ import annotations

import torch

from specrobust.errors import SpecRobustError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpecRobustError(f"device {name} asked for, but this machine has no CUDA GPU")
    try:
        return torch.device(name)
    except RuntimeError:
        raise SpecRobustError(f"unknown device {name!r}; use auto, cpu or cuda") from None
