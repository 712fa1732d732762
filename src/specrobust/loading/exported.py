"""``torch.export`` programs (``.pt2``), read without running anything a file smuggles in.

``torch.export.load`` trusts its archive: it unpickles weights, constants and sample inputs with
``weights_only=False`` (and plain ``pickle.loads`` for opaque objects), loads compiled
AOTInductor libraries, evaluates symbolic-shape expressions with ``sympy.sympify`` (an ``eval``),
resolves node targets by walking attributes from ``torch`` (``torch.os.system`` resolves), and
``.module()`` executes the archive's guard code. So the archive is checked member by member
before torch reads it, from one in-memory copy (what is checked is what torch gets):

- only the members a plain exported program has (no compiled code, no other programs);
- every pickle in it readable by the weights-only unpickler, and holding a tensor (weights,
  constants) or tensors (sample inputs); no script or opaque objects;
- every node target an ATen operator or one of a few arithmetic operators;
- every symbolic expression made of symbols, numbers, arithmetic and sympy's shape functions;
- no guard code.

What fails a check is refused with one line naming it. Torch then loads the checked copy with
``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` set, so any unpickling it does stays weights-only.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from specrobust.errors import SpecRobustError, first_line
from specrobust.files.storage import MAX_JSON_BYTES, check_depth
from specrobust.files.ziparchive import Archive, rebuild
from specrobust.loading.files import ModelFile

_MEMBER = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/model\.json|data/weights/[\w.]+|data/constants/[\w.]+"
    r"|data/sample_inputs/model\.pt|extra/[\w./-]+)")
_TARGET = re.compile(r"torch\.ops\.aten\.\w+(\.\w+)?"
                     r"|_operator\.(getitem|add|sub|mul|floordiv|truediv|mod|neg|pow"
                     r"|eq|ne|lt|le|gt|ge)"
                     r"|torch\.sym_(max|min|not|float|int|sqrt|ite)")
_REFUSED_OPS = {"from_file"}  # ATen operators that touch files
_EXPRESSION_TOKEN = re.compile(
    r"\s+|[A-Za-z_]\w*|\d+(?:\.\d+)?(?:e[-+]?\d+)?|'[A-Za-z_]\w*'|\*\*|//|==|!=|<=|>=|[-+*/%(),<>=]")
_SYMBOL = re.compile(r"[a-z]+\d+")
_EXPRESSION_NAMES = {
    # sympy constructors and assumptions torch writes, and the shape functions its deserializer
    # knows (torch/_export/serde/serialize.py, ExportedProgramDeserializer.sympy_functions)
    "Symbol", "Integer", "Rational", "Float", "True", "False", "oo", "zoo", "nan",
    "positive", "negative", "integer", "real", "nonnegative", "nonpositive", "finite",
    "Max", "Min", "Abs", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "Mod", "Pow",
    "floor", "ceiling", "sqrt", "Piecewise",
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt",
    "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt",
    "RoundDecimal", "ToFloat", "OpaqueUnaryFn_sqrt", "BitwiseFn_bitwise_and",
    "BitwiseFn_bitwise_or", "Identity",
}


class ExportedProgram(nn.Module):
    """The module of a ``torch.export`` program. Such a module is fixed in the mode it was
    exported in and refuses ``train()``/``eval()``; here they leave it alone, so the rest of
    specrobust can switch modes as it does for every model."""

    def __init__(self, program: nn.Module):
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> ExportedProgram:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def load_exported(file: ModelFile) -> nn.Module:
    """The program in ``file``, checked (module docstring) before torch reads it."""
    archive = file.archive
    if archive is None:
        raise SpecRobustError(f"{file.path} is not a torch.export archive")
    check_archive(archive, file.path)
    try:
        with _weights_only_everywhere(), _torch_logs_quiet():
            program = torch.export.load(io.BytesIO(rebuild(archive)))
            return ExportedProgram(program.module())
    except Exception as error:  # noqa: BLE001 - a damaged program fails in many ways
        raise SpecRobustError(f"cannot load torch.export program {file.path} "
                              f"({type(error).__name__}: {first_line(error)})") from None


def check_archive(archive: Archive, path: Path) -> None:
    """Refuse, in one line, an archive holding anything but a plain exported program. The
    archive was parsed by specrobust's ZIP reader (unique names, headers that agree, sizes
    within bounds); torch gets it rebuilt from the same members, so it reads what is checked."""
    infos = archive.members
    roots = {info.name.split("/", 1)[0] for info in infos}
    if len(roots) != 1:
        raise SpecRobustError(f"{path} is not a torch.export archive (it has {len(roots)} top "
                              "folders)")
    root = roots.pop() + "/"
    members = {info.name[len(root):]: info for info in infos}
    for name in members:
        if not _MEMBER.fullmatch(name) or ".." in name.split("/"):
            raise _refused(path, f"it holds {name!r}, which a plain exported program does not "
                                 "(compiled code, another program or a legacy layout)")
    for needed in ("archive_format", "models/model.json", "data/sample_inputs/model.pt",
                   "data/weights/model_weights_config.json",
                   "data/constants/model_constants_config.json"):
        if needed not in members:
            raise _refused(path, f"it lacks {needed} (saved by another torch version, or "
                                 "not a torch.export.save archive)")

    def read(name: str) -> bytes:
        return archive.read(members[name].name)

    def read_json(name: str):
        if members[name].size > MAX_JSON_BYTES:
            raise _refused(path, f"{name} is larger than {MAX_JSON_BYTES >> 20} MiB")
        try:
            document = json.loads(read(name))
        except (ValueError, RecursionError):
            raise _refused(path, f"{name} is not readable JSON") from None
        check_depth(document, f"{path}: {name}")
        return document

    for config_name, folder in (("data/weights/model_weights_config.json", "data/weights/"),
                                ("data/constants/model_constants_config.json",
                                 "data/constants/")):
        document = read_json(config_name)
        config = document.get("config") if isinstance(document, dict) else None
        if not isinstance(config, dict):
            raise _refused(path, f"{config_name} holds no config")
        for fqn, meta in config.items():
            file = meta.get("path_name") if isinstance(meta, dict) else None
            if not isinstance(file, str) or folder + file not in members:
                raise _refused(path, f"{config_name} names a missing payload for {fqn!r}")
            if folder == "data/constants/" and not file.startswith("tensor_"):
                raise _refused(path, f"constant {fqn!r} is a script or Python object, not a "
                                     "tensor")
            if meta.get("use_pickle"):
                _check_pickle(read(folder + file), path, f"{folder}{file}", tensors_only=True)
            else:
                _check_layout(meta.get("tensor_meta"), members[folder + file].size, fqn, path)
    _check_pickle(read("data/sample_inputs/model.pt"), path, "its sample inputs",
                  tensors_only=False)
    _check_program(read_json("models/model.json"), path)


def _check_pickle(data: bytes, path: Path, what: str, *, tensors_only: bool) -> None:
    try:
        value = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure: not plain tensors and data
        raise _refused(path, f"{what} is not readable as plain tensors and data "
                             f"({type(error).__name__}: {first_line(error)})") from None
    if tensors_only and not isinstance(value, torch.Tensor):
        raise _refused(path, f"{what} holds a {type(value).__name__}, not a tensor")


def _check_layout(meta, stored: int, fqn: str, path: Path) -> None:
    """A raw weight's declared dtype, sizes, strides and offset: whole numbers that address
    only the bytes stored for it (torch would allocate a zero-byte payload at its declared
    size, and index past a short one)."""
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    def whole(value):
        number = value.get("as_int") if isinstance(value, dict) else None
        if type(number) is not int or number < 0:
            raise _refused(path, f"weight {fqn!r} declares a size, stride or offset that is not "
                                 "a whole number")
        return number

    if not isinstance(meta, dict) or not isinstance(meta.get("sizes"), list) or \
            not isinstance(meta.get("strides"), list) or \
            len(meta["sizes"]) != len(meta["strides"]) or len(meta["sizes"]) > 16:
        raise _refused(path, f"weight {fqn!r} has no readable tensor layout")
    dtype = next((d for code, d in _SERIALIZE_TO_TORCH_DTYPE.items()
                  if type(meta.get("dtype")) is int and int(code) == meta["dtype"]), None)
    if dtype is None:
        raise _refused(path, f"weight {fqn!r} declares an unknown dtype")
    sizes = [whole(size) for size in meta["sizes"]]
    strides = [whole(stride) for stride in meta["strides"]]
    offset = whole(meta.get("storage_offset"))
    reach = sum((size - 1) * stride for size, stride in zip(sizes, strides, strict=True))
    elements = 0 if 0 in sizes else offset + reach + 1
    if elements * torch._utils._element_size(dtype) > stored:
        raise _refused(path, f"weight {fqn!r} declares more elements than the "
                             f"{stored:,} bytes stored for it")


def _check_program(document: dict, path: Path) -> None:
    if not isinstance(document, dict):
        raise _refused(path, "models/model.json holds no program")
    if document.get("guards_code"):
        raise _refused(path, "it carries guard code, which torch would run as Python when "
                             "loading it")
    for name in (document.get("range_constraints") or {}):
        _check_expression(name, path)
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if isinstance(value, str):
                if key in ("target", "as_operator"):
                    _check_target(value, path)
                elif key == "expr_str":
                    _check_expression(value, path)
            else:
                stack.append(value)


def _check_target(target: str, path: Path) -> None:
    if not _TARGET.fullmatch(target) or (target.startswith("torch.ops.aten.")
                                         and target.split(".")[3] in _REFUSED_OPS):
        raise _refused(path, f"its graph calls {target[:80]!r}, which is not an ATen operator")


def _check_expression(text: str, path: Path) -> None:
    position = 0
    while position < len(text):
        token = _EXPRESSION_TOKEN.match(text, position)
        if token is None:
            raise _refused(path, f"a shape expression holds {text[position:position + 20]!r}")
        word = token.group().strip("'")
        if (word[:1].isalpha() or word[:1] == "_") and word not in _EXPRESSION_NAMES \
                and not _SYMBOL.fullmatch(word):
            raise _refused(path, f"a shape expression names {word[:40]!r}")
        position = token.end()


@contextmanager
def _weights_only_everywhere():
    """``torch.load`` is weights-only inside, whatever its caller asks for."""
    name = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
    before = os.environ.get(name)
    os.environ[name] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextmanager
def _torch_logs_quiet():
    """torch's export loader logs its own traceback before raising on a damaged program; the
    one line specrobust prints says it all."""
    logger = logging.getLogger("torch._export")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _refused(path: Path, why: str) -> SpecRobustError:
    return SpecRobustError(f"torch.export program {path} refused: {why}; specrobust reads only "
                           "plain exported programs, since torch.export.load would run such "
                           "content")
