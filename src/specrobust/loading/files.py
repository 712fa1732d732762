"""What a model file is, decided from its content (never from its name), and its digest."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from specrobust.errors import SpecRobustError

TORCH = "a torch.save file"  # a state dict or a specrobust checkpoint (or junk: read says so)
SAFETENSORS = "a safetensors file"
TORCHSCRIPT = "a TorchScript program"
EXPORTED = "a torch.export program"
PROGRAMS = (TORCHSCRIPT, EXPORTED)


def kind_of(path: Path) -> str:
    """One of the kinds above. A zip archive is a program when it holds a program's members
    (TorchScript keeps its code under ``<name>/code/``, ``torch.export.save`` writes an
    ``archive_format`` member); every other file is read as ``torch.save`` output, whose reader
    refuses anything but tensors and plain data."""
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
        if any(name.endswith("/archive_format") for name in names):
            return EXPORTED
        if any("/code/" in name for name in names):
            return TORCHSCRIPT
        return TORCH
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
