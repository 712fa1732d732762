"""TorchScript programs (``torch.jit.save``): run by TorchScript's interpreter, which runs no
Python; its unpickler builds only TorchScript's own types."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from specrobust.errors import run_user_code


def load_torchscript(path: Path) -> nn.Module:
    return run_user_code(lambda: torch.jit.load(str(path), map_location="cpu"),
                         f"cannot load TorchScript program {path} (", ")")
