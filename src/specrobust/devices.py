"""Choosing the device a command runs on."""

from __future__ import annotations

import re

import torch

from specrobust.errors import SpecRobustError, quoted


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if re.fullmatch(r"cpu|cuda(:[0-9]{1,3})?", name) is None:
        raise SpecRobustError(f"unknown device {quoted(name)}; use auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpecRobustError(f"device {name} asked for, but this machine has no CUDA GPU")
    try:
        return torch.device(name)
    except RuntimeError:
        raise SpecRobustError(f"unknown device {quoted(name)}; use auto, cpu or cuda") from None
