"""What a model file is, decided from its content (never from its name), and its digest.

Weights come as ``torch.save`` files or safetensors. Programs (files that bring their own
architecture) are zip archives recognised by their members; each kind of program is one
:class:`ProgramKind` in ``PROGRAM_KINDS``, whose loader lives in a module of its own: a new
kind is a new module and its line there.
"""

from __future__ import annotations

import hashlib
import importlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from specrobust.errors import SpecRobustError

TORCH = "a torch.save file"  # a state dict or a specrobust checkpoint (or junk: read says so)
SAFETENSORS = "a safetensors file"


@dataclass(frozen=True)
class ProgramKind:
    name: str  # for messages: "a torch.export program"
    short: str  # the loaded model's name prefix: "torch.export:model.pt2"
    holds: Callable[[list[str]], bool]  # from a zip archive's member names: is it one?
    loader: str  # "module:function", (path) -> nn.Module, imported when used

    def load(self, path: Path):
        module, _, function = self.loader.partition(":")
        return getattr(importlib.import_module(module), function)(path)


PROGRAM_KINDS = (
    # torch.export.save writes an `archive_format` member (checked before torch reads it).
    ProgramKind("a torch.export program", "torch.export",
                lambda names: any(name.endswith("/archive_format") for name in names),
                "specrobust.loading.exported:load_exported"),
    # torch.jit.save keeps the program's TorchScript code under `<name>/code/`.
    ProgramKind("a TorchScript program", "TorchScript",
                lambda names: any("/code/" in name for name in names),
                "specrobust.loading.torchscript:load_torchscript"),
)


def kind_of(path: Path) -> str | ProgramKind:
    """``TORCH``, ``SAFETENSORS`` or a program kind. A zip archive is a program when it holds a
    program's members; every other file is read as ``torch.save`` output, whose reader refuses
    anything but tensors and plain data."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError as error:
        raise SpecRobustError(f"cannot read model file {path} ({error.strerror})") from None
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return TORCH
        return next((kind for kind in PROGRAM_KINDS if kind.holds(names)), TORCH)
    if len(head) == 9 and head[8:9] == b"{" and \
            int.from_bytes(head[:8], "little") < path.stat().st_size:
        return SAFETENSORS
    return TORCH


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
