"""TorchScript programs (``torch.jit.save``): run by TorchScript's interpreter, which runs no
Python; its unpickler builds only TorchScript's own types."""

from __future__ import annotations

import io

import torch
from torch import nn

from specrobust.errors import SpecRobustError, run_user_code
from specrobust.files.ziparchive import rebuild
from specrobust.loading.files import ModelFile


def load_torchscript(file: ModelFile) -> nn.Module:
    """The program, loaded by TorchScript from an archive rebuilt from the members specrobust's
    ZIP reader parsed (never from the file itself)."""
    if file.archive is None:
        raise SpecRobustError(f"{file.path} is not a TorchScript archive")
    rebuilt = io.BytesIO(rebuild(file.archive))
    return run_user_code(lambda: torch.jit.load(rebuilt, map_location="cpu"),
                         f"cannot load TorchScript program {file.path} (", ")")
