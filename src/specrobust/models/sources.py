"""The one resolver: any model source in, a ready :class:`LoadedModel` out.

A source is what a user names on the command line or passes to the Python API
(:class:`ModelSource`, the model-source options declared once):

- a specrobust run directory, checkpoint or safetensors file (they describe themselves);
- a pretrained model by name (``specrobust models --pretrained``), e.g. the natural CIFAR-10
  ResNet-18 that ships with pyautoattack;
- a weights file (a plain state dict, bare or under ``state_dict`` / ``model_state_dict`` /
  ``net`` / ``model``, keys possibly prefixed by ``module.``, ``_orig_mod.`` or ``model.``) for
  an architecture named by ``model``: a zoo name, or user code ``path/to/arch.py:factory`` or
  ``package.module:factory`` (with ``model_args`` as keyword arguments);
- user code alone, whose factory returns a model with its weights (RobustBench's
  ``load_model``, for instance);
- self-describing programs: TorchScript files (``torch.jit.save``) and ``torch.export``
  programs (``.pt2``).

Loading user code is an explicit act (``model`` names the file, and running it is the point);
loading weights never runs code (``weights_only=True``). Normalisation given by ``mean`` /
``std`` (or stored as ``mean`` / ``std`` tensors beside the weights) becomes the model's first
layer, so every resolved model takes images in [0, 1]. Every model is tried on one batch of its
dataset's image shape before it is used, so a model that cannot take those images ends in one
line, before anything is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import sys
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from specrobust import checkpoint
from specrobust.checkpoint import FORMAT, LoadedModel, load_model, read_checkpoint, sha256_of
from specrobust.errors import SpecRobustError, quoted
from specrobust.models import MODELS, Classifier, ModelSpec, Normalize, create_model

# Keys under which checkpoints in the wild keep their weights, tried in this order.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "net", "model")
# Prefixes that wrappers add to every key: DataParallel / DDP, torch.compile, a `model.` holder.
WRAPPER_PREFIXES = (*checkpoint.WRAPPER_PREFIXES, "model.")
_NORMALISATION_KEYS = {"mean", "std", "normalize.mean", "normalize.std"}
# Weights that TRADES' WideResNet builds but never calls; dropped where the architecture has
# no such part (models/trades_wideresnet.py).
_NEVER_USED = ("sub_block1.",)


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from. ``path`` may be None when ``model`` is a pretrained name or
    user code that returns its own weights."""

    path: str | None = None
    model: str | None = None
    model_args: dict | None = None
    dataset: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    which: str = "auto"  # which checkpoint of a run directory

    def describe(self) -> str:
        return self.path or self.model or "?"


def as_source(source: ModelSource | str) -> ModelSource:
    """A plain string names a path (or a pretrained model)."""
    return source if isinstance(source, ModelSource) else ModelSource(path=str(source))


def resolve(source: ModelSource | str) -> LoadedModel:
    """The model ``source`` names, in eval mode on the CPU, checked on one batch."""
    source = as_source(source)
    from specrobust.models.pretrained import PRETRAINED

    path = Path(source.path) if source.path else None
    named = None
    if path is None and source.model in PRETRAINED:
        named = source.model
    elif path is not None and not path.exists() and source.path in PRETRAINED:
        named = source.path
    if named is not None:
        loaded = _pretrained(named, source)
    elif path is None:
        loaded = _from_factory_alone(source)
    elif not path.exists():
        raise SpecRobustError(f"model source {path} does not exist (nor is it a pretrained "
                              "model: see `specrobust models --pretrained`)")
    elif path.is_file() and _archive_holds(path, lambda name: "/code/" in name
                                           and name.endswith(".py")):
        loaded = _program(path, source, torch.jit.load, "TorchScript")
    elif path.is_file() and _archive_holds(path, lambda name: name.endswith("/archive_format")):
        loaded = _program(path, source, _load_exported, "torch.export")
    else:
        payload = None if path.is_dir() else _payload(path)
        if payload is None or payload.get("format") == FORMAT:  # describes itself
            if source.model_args or source.mean or source.std or (
                    source.model and source.model not in MODELS):
                raise SpecRobustError(f"{path} describes its own model; --model-args, --mean "
                                      "and --std apply to weights files and user code only")
            loaded = load_model(path, which=source.which, model=source.model,
                                dataset=source.dataset)
        else:
            loaded = _weights_file(path, source, payload)
    _probe(loaded, source)
    return loaded


# ---- the kinds of source -----------------------------------------------------------------------


def _payload(path: Path) -> dict:
    """What a weights file holds, read once: a safetensors file's header metadata (its tensors
    are read later), or a ``torch.save`` file's whole content (``weights_only``)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                return dict(handle.metadata() or {})
        except Exception:  # noqa: BLE001 - not a readable safetensors file: the loader says so
            return {}
    return read_checkpoint(path)


def _archive_holds(path: Path, test) -> bool:
    """Whether ``path`` is a zip archive with a member passing ``test``: a ``torch.jit.save``
    archive keeps its program under ``<name>/code/``, a ``torch.export.save`` one has an
    ``archive_format`` member."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(test(name) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


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


def _load_exported(path: str, map_location=None) -> nn.Module:
    return ExportedProgram(torch.export.load(path).module())


def _dataset_shape(dataset: str | None, what: str) -> tuple[str, int, tuple[int, ...]]:
    """(dataset, classes, image shape) of the dataset a source is evaluated on."""
    if dataset is None:
        raise SpecRobustError(f"{what} does not say which data it takes; name it with --dataset")
    from specrobust.data import SyntheticSpec, get_dataset_info, parse_dataset_name

    name, options = parse_dataset_name(dataset)
    info = get_dataset_info(name)
    if info.generated:
        spec = SyntheticSpec.from_options(options)
        return dataset, spec.num_classes, (spec.channels, spec.size, spec.size)
    return dataset, info.num_classes, tuple(info.image_shape)


def _wrap(net: nn.Module, name: str, dataset: str, classes: int, channels: int,
          source: ModelSource, stored: dict | None = None) -> Classifier:
    """``net`` behind the normalisation it expects: --mean/--std, else mean/std tensors that
    came with its weights, else none."""
    mean, std = source.mean, source.std
    if mean is None and std is None and stored:
        mean, std = stored.get("mean"), stored.get("std")
    if (mean is None) != (std is None):
        raise SpecRobustError("give --mean and --std together (or neither)")
    spec = ModelSpec(name, classes, channels,
                     None if mean is None else tuple(map(float, mean)),
                     None if std is None else tuple(map(float, std)))
    return Classifier(spec, net, Normalize(channels, spec.mean, spec.std)).eval()


def _program(path: Path, source: ModelSource, load, kind: str) -> LoadedModel:
    dataset, classes, shape = _dataset_shape(source.dataset, f"{kind} program {path}")
    try:
        net = load(str(path), map_location="cpu")
    except Exception as error:  # noqa: BLE001 - a damaged program fails in many ways
        raise SpecRobustError(f"cannot load {kind} program {path} "
                              f"({type(error).__name__}: {_first_line(error)})") from None
    model = _wrap(net, f"{kind}:{path.name}", dataset, classes, shape[0], source)
    return LoadedModel(model, dataset, None, path, None, sha256_of(path))


def _weights_file(path: Path, source: ModelSource, payload: dict | None = None) -> LoadedModel:
    if source.model is None:
        raise SpecRobustError(f"{path} holds weights without their architecture; name it with "
                              "--model (a zoo name, or path/to/arch.py:factory)")
    state_dict = read_state_dict(path, payload)
    net, name, dataset, classes, channels = _architecture(source, f"weights {path}")
    stored = {k: state_dict.pop(k) for k in ("mean", "std") if k in state_dict
              and "mean" not in net.state_dict()}
    load_matching(net, state_dict, path)
    stored = {k: v.flatten().tolist() for k, v in stored.items()}
    model = _wrap(net, name, dataset, classes, channels, source, stored)
    if not source.mean and "normalize.mean" in state_dict:
        model.normalize.load_state_dict({"mean": state_dict["normalize.mean"],
                                         "std": state_dict["normalize.std"]})
    return LoadedModel(model, dataset, None, path, None, sha256_of(path))


def _from_factory_alone(source: ModelSource) -> LoadedModel:
    if source.model is None or ":" not in source.model:
        raise SpecRobustError("name a model source: a run directory, a weights file with "
                              "--model, a pretrained name, or --model path/to/arch.py:factory")
    net, name, dataset, classes, channels = _architecture(source, f"--model {source.model}")
    model = _wrap(net, name, dataset, classes, channels, source)
    home = Path.cwd() / _safe_stem(source.model)
    return LoadedModel(model, dataset, None, home, None, _state_sha256(model))


def _pretrained(name: str, source: ModelSource) -> LoadedModel:
    from specrobust.models.pretrained import PRETRAINED, local_file

    entry = PRETRAINED[name]
    if source.dataset not in (None, entry.dataset):
        raise SpecRobustError(f"{name} is a {entry.dataset} model, not {source.dataset}")
    path = local_file(entry)
    spec = ModelSource(path=str(path), model=entry.architecture, dataset=entry.dataset,
                       mean=source.mean or entry.mean, std=source.std or entry.std)
    loaded = _weights_file(path, spec)
    loaded.model.spec = dataclasses.replace(loaded.model.spec, name=name)
    loaded.home = Path.cwd() / name
    loaded.eps = entry.eps
    loaded.norm = entry.threat_model.lower() if entry.eps else None
    return loaded


# ---- architectures -----------------------------------------------------------------------------


def _architecture(source: ModelSource, what: str):
    """(module, its name, dataset, classes, channels) for ``source.model``."""
    dataset, classes, shape = _dataset_shape(source.dataset, what)
    if ":" in source.model:
        net = _call_factory(source.model, source.model_args or {})
        return net, source.model, dataset, classes, shape[0]
    if source.model_args:
        raise SpecRobustError("--model-args applies to user code (path/to/arch.py:factory), "
                              f"not to the zoo model {source.model}")
    net = create_model(source.model, classes, shape[0]).net  # raises with the known names
    return net, source.model, dataset, classes, shape[0]


def load_factory(text: str):
    """The callable ``path/to/file.py:name`` or ``package.module:name`` names. Running that
    file is the point of naming it: it is the user's own code."""
    location, _, attribute = text.rpartition(":")
    if not location or not attribute.isidentifier():
        raise SpecRobustError(f"--model {quoted(text)}: name user code as path/to/arch.py:factory "
                              "or package.module:factory")
    if location.endswith(".py") or "/" in location or "\\" in location:
        file = Path(location)
        if not file.is_file():
            raise SpecRobustError(f"--model {quoted(text)}: {file} does not exist")
        module_name = f"specrobust_user_{hashlib.sha1(str(file.resolve()).encode()).hexdigest()}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # noqa: BLE001 - the user's code, reported in one line
            sys.modules.pop(module_name, None)
            raise SpecRobustError(f"running {file} failed ({type(error).__name__}: "
                                  f"{_first_line(error)})") from None
    else:
        try:
            module = importlib.import_module(location)
        except Exception as error:  # noqa: BLE001 - ImportError and whatever the module raises
            raise SpecRobustError(f"--model {quoted(text)}: cannot import {location} "
                                  f"({type(error).__name__}: {_first_line(error)})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise SpecRobustError(f"--model {quoted(text)}: {location} has no callable {attribute}")
    return factory


def _call_factory(text: str, arguments: dict) -> nn.Module:
    factory = load_factory(text)
    try:
        net = factory(**arguments)
    except Exception as error:  # noqa: BLE001 - the user's code, reported in one line
        raise SpecRobustError(f"--model {quoted(text)} raised {type(error).__name__}: "
                              f"{_first_line(error)}") from None
    if not isinstance(net, nn.Module):
        raise SpecRobustError(f"--model {quoted(text)} returned a {type(net).__name__}, not a "
                              "torch.nn.Module")
    return net.cpu().eval()


def parse_model_args(text: str | None) -> dict | None:
    """``--model-args '{"depth": 28}'``: a JSON object of keyword arguments."""
    if text is None:
        return None
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError as error:
        raise SpecRobustError(f"--model-args must be a JSON object such as "
                              f"'{{\"depth\": 28}}' ({error.msg})") from None
    if not isinstance(arguments, dict):
        raise SpecRobustError(f"--model-args must be a JSON object, got {quoted(text)}")
    return arguments


# ---- weights -----------------------------------------------------------------------------------


def read_state_dict(path: Path, payload: dict | None = None) -> dict[str, torch.Tensor]:
    """A plain state dict from a ``.pt``/``.pth`` (``payload``: its content, if already read)
    or ``.safetensors`` file, unwrapped from the usual holder keys. Never runs code."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as error:
            raise SpecRobustError(f"cannot read safetensors file {path} ({error})") from None
    payload = read_checkpoint(path) if payload is None else payload
    for key in WRAPPER_KEYS:
        if isinstance(payload.get(key), dict) and payload[key]:
            payload = payload[key]
            break
    tensors = {k: v for k, v in payload.items() if isinstance(v, torch.Tensor)}
    if not tensors or not all(isinstance(k, str) for k in tensors):
        held = ", ".join(map(str, list(payload)[:6]))
        raise SpecRobustError(f"{path} holds no state dict of tensors (its keys: {held}); save "
                              "model.state_dict()")
    return tensors


def load_matching(net: nn.Module, state_dict: dict, path: Path) -> None:
    """Load ``state_dict`` into ``net``, stripping wrapper prefixes where that makes the keys
    match; otherwise one line naming the first missing and unexpected keys, and the fix where a
    prefix explains them."""
    state_dict = {k: v for k, v in state_dict.items()
                  if k not in _NORMALISATION_KEYS and not k.endswith("n_averaged")}
    expected = set(net.state_dict())
    candidate = state_dict
    for _ in range(3):  # one wrapper at a time, until the keys are the architecture's
        if set(candidate) == expected:
            break
        stripped = _without_shared_prefix(candidate)
        if stripped is None:
            break
        candidate = stripped
    if not any(k.startswith(_NEVER_USED) for k in expected):
        candidate = {k: v for k, v in candidate.items() if not k.startswith(_NEVER_USED)}
    missing = sorted(expected - set(candidate))
    unexpected = sorted(set(candidate) - expected)
    if missing or unexpected:
        raise SpecRobustError(f"{path} does not fit the architecture: {len(missing)} missing "
                              f"keys (first {missing[:2]}), {len(unexpected)} unexpected (first "
                              f"{unexpected[:2]}){_prefix_hint(missing, unexpected)}")
    try:
        net.load_state_dict(candidate, strict=True)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        raise SpecRobustError(f"{path} does not fit the architecture: "
                              f"{(lines or [_first_line(error)])[0].rstrip('.')}") from None


def _without_shared_prefix(state_dict: dict) -> dict | None:
    """``state_dict`` without a wrapper prefix that every key carries; None without one."""
    for prefix in WRAPPER_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            stripped = OrderedDict(state_dict)
            consume_prefix_in_state_dict_if_present(stripped, prefix)
            return dict(stripped)
    return None


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """Where every unexpected key is an expected one behind a common prefix (or the other way
    round), say so: the file was saved from a wrapper."""
    for have, want in ((unexpected, missing), (missing, unexpected)):
        if have and want and want[0] and have[0].endswith(want[0]):
            prefix = have[0][: len(have[0]) - len(want[0])]
            if prefix and all(k.startswith(prefix) for k in have):
                side = "the file's" if have is unexpected else "the architecture's"
                return (f"; {side} keys carry an extra prefix {prefix!r}: save the inner "
                        "module's state_dict, or name the architecture that holds it")
    return ""


def _state_sha256(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ---- the check every model passes ------------------------------------------------------------


def _probe(loaded: LoadedModel, source: ModelSource) -> None:
    """Forward passes on blank images of the dataset's shape: a model that cannot take them,
    or does not return one logit per class, ends here in one line."""
    if loaded.dataset is None:
        return  # the caller asks for --dataset
    _, classes, shape = _dataset_shape(loaded.dataset, source.describe())
    for batch in (2, 3):  # two sizes: a program exported with a fixed batch size fails here
        try:
            with torch.no_grad():
                logits = loaded.model(torch.zeros(batch, *shape))
        except Exception as error:  # noqa: BLE001 - any failure: it cannot take these images
            raise SpecRobustError(f"{source.describe()} cannot take {batch} of "
                                  f"{loaded.dataset}'s {'x'.join(map(str, shape))} images "
                                  f"({type(error).__name__}: {_first_line(error)})") from None
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (batch, classes):
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else \
                type(logits).__name__
            raise SpecRobustError(f"{source.describe()} returns {got} for {batch} images of "
                                  f"{loaded.dataset}; expected ({batch}, {classes}) logits")


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or "?"
    return text.splitlines()[0][:200]


def _safe_stem(text: str) -> str:
    stem = Path(text.rpartition(":")[0]).stem + "-" + text.rpartition(":")[2]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
