"""What a model file is, decided from its content (never from its name), and its digest.

Weights come as ``torch.save`` files or safetensors. Programs (files that bring their own
architecture) are zip archives recognised by their members; each kind of program is one
:class:`ProgramKind` in ``PROGRAM_KINDS``, whose loader lives in a module of its own: a new
kind is a new module and its line there.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from specrobust.errors import SpecRobustError
from specrobust.files.storage import read_regular
from specrobust.files.ziparchive import DEFLATED, STORED, Archive

TORCH = "a torch.save file"  # a state dict or a specrobust checkpoint (or junk: read says so)
SAFETENSORS = "a safetensors file"


# A model file larger than this is refused before it is read (the largest zoo model, WRN-70-16,
# is about 1.1 GB in fp32).
MAX_MODEL_BYTES = 4 << 30


@dataclass(frozen=True)
class ModelFile:
    """A model file read once: its bytes, their digest and what they are. Everything that
    follows (the kind, the checks, torch's readers) works on these bytes, never on the path
    again, so what was checked is what is loaded."""

    path: Path
    data: bytes
    kind: str | ProgramKind
    archive: Archive | None  # the parsed ZIP archive, for archives

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ProgramKind:
    name: str  # for messages: "a torch.export program"
    short: str  # the loaded model's name prefix: "torch.export:model.pt2"
    holds: Callable[[list[str]], bool]  # from a zip archive's member names: is it one?
    loader: str  # "module:function", (ModelFile) -> nn.Module, imported when used

    def load(self, file: ModelFile):
        module, _, function = self.loader.partition(":")
        return getattr(importlib.import_module(module), function)(file)


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


def read_model_file(path: Path) -> ModelFile:
    """The file at ``path``, read once (a regular file within :data:`MAX_MODEL_BYTES`), and its
    kind: ``TORCH``, ``SAFETENSORS`` or a program kind, decided from the content. A ZIP archive
    is parsed by specrobust's own reader (``specrobust.files.ziparchive``, which refuses one that
    readers could read differently); it is a program when it holds a program's members, else
    ``torch.save`` output. Every other file is read as ``torch.save`` output, whose reader
    refuses anything but tensors and plain data."""
    try:
        data = read_regular(path, "model file", MAX_MODEL_BYTES)
    except OSError as error:
        raise SpecRobustError(f"cannot read model file {path} ({error.strerror})") from None
    if data[:4] == b"PK\x03\x04":
        archive = Archive.of_bytes(data, f"model file {path}", methods=(STORED, DEFLATED),
                                   max_size=MAX_MODEL_BYTES)
        names = archive.names()
        kind = next((kind for kind in PROGRAM_KINDS if kind.holds(names)), TORCH)
        return ModelFile(path, data, kind, archive)
    if len(data) >= 9 and data[8:9] == b"{" and int.from_bytes(data[:8], "little") < len(data):
        return ModelFile(path, data, SAFETENSORS, None)
    return ModelFile(path, data, TORCH, None)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
