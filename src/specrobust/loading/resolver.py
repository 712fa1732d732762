"""The one resolver: any model source in, a ready :class:`LoadedModel` out.

A source is what a user names on the command line or passes to the Python API
(:class:`ModelSource`, the model-source options declared once):

- a specrobust run directory (its checkpoints must be specrobust's own), checkpoint or
  safetensors file (they describe themselves);
- a pretrained model by name (``specrobust models --pretrained``);
- a weights file (a plain state dict, bare or under ``state_dict`` / ``model_state_dict`` /
  ``net`` / ``model``, keys possibly prefixed by ``module.``, ``_orig_mod.`` or ``model.``) for
  an architecture named by ``model``: a zoo name, or user code ``path/to/arch.py:factory`` or
  ``package.module:factory`` (with ``model_args`` as keyword arguments);
- user code alone, whose factory returns a model with its weights;
- programs: TorchScript files (``torch.jit.save``, run by TorchScript's interpreter, which runs
  no Python) and ``torch.export`` programs (checked before torch reads them:
  ``loading.exported``).

A file's kind is decided from its content (``loading.files``) and must agree with how it was
named: a file given with ``model`` is read as weights or refused, a run's checkpoint and a
pretrained name's file are weights, never programs. Loading weights never runs code
(``weights_only=True`` or safetensors); user code runs only when ``model`` names it.
Normalisation given by ``mean`` / ``std`` (or stored beside the weights) becomes the model's
first layer, so every resolved model takes images in [0, 1]. Every model is tried on blank
images of its dataset's shape before it is used, so a model that cannot take them ends in one
line, before anything is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import torch
from torch import nn

from specrobust import checkpoint
from specrobust.boundary import check_finite_logits
from specrobust.errors import SpecRobustError, run_user_code
from specrobust.files import layout
from specrobust.loading import files
from specrobust.loading.source import LoadedModel, ModelSource, as_source
from specrobust.loading.usercode import call_factory
from specrobust.loading.weights import load_matching, split_normalisation, state_dict_of
from specrobust.models import (
    DEFAULT_NORMALISATION,
    MODELS,
    Classifier,
    ModelSpec,
    Normalize,
    create_model,
)


def resolve(source: ModelSource | str) -> LoadedModel:
    """The model ``source`` names, in eval mode on the CPU, checked on blank images.

    Args:
        source: a `ModelSource`, or its ``path`` as text: a run directory, a specrobust
            checkpoint or safetensors file, a pretrained name (``specrobust models``), a
            TorchScript or ``torch.export`` (``.pt2``) file.

    Returns:
        A `LoadedModel`: the module (``.model``) with what the source says about it.

    Raises:
        SpecRobustError: in one line, when the source cannot be read or is not a model.
    """
    loaded = load_model_source(as_source(source))
    _probe(loaded, as_source(source))
    return loaded


def load_model(source: str | Path, *, which: str = "auto", model: str | None = None,
               dataset: str | None = None) -> LoadedModel:
    """A run directory, checkpoint or weights file as a model, without the probe: the short
    form of :func:`resolve` for Python code that holds a path."""
    return load_model_source(ModelSource(str(source), model=model, dataset=dataset,
                                         which=which))


def load_model_source(source: ModelSource) -> LoadedModel:
    from specrobust.loading.pretrained import PRETRAINED

    path = Path(source.path) if source.path else None
    if path is None and source.model in PRETRAINED:
        return _pretrained(source.model, source)
    if path is not None and not path.exists() and source.path in PRETRAINED:
        return _pretrained(source.path, source)
    if path is None:
        return _from_factory_alone(source)
    if not path.exists():
        raise SpecRobustError(f"model source {path} does not exist (nor is it a pretrained "
                              "model: see `specrobust models --pretrained`)")
    if path.is_dir():
        _no_options_for_self_described(path, source)
        return _run_checkpoint(path, source)
    file = files.read_model_file(path)
    if isinstance(file.kind, files.ProgramKind):
        if source.model is not None:
            raise SpecRobustError(f"{path} is {file.kind.name}, not a weights file: it brings "
                                  "its own architecture, so drop --model (or name a weights "
                                  "file)")
        return _program(file, source)
    weights, own = _read_weights(file)
    if own is not None:
        _no_options_for_self_described(path, source)
        return _own(file, own, source, run_dir=None)
    return _weights(file, weights, source)


# ---- the kinds of source -----------------------------------------------------------------------


def _read_weights(file: files.ModelFile):
    """(what the file holds, its own description or None) of a weights file: a safetensors
    file's tensors, or a ``torch.save`` file's content (unwrapped by :func:`_weights`)."""
    path = file.path
    if file.kind == files.SAFETENSORS:
        state_dict, metadata = checkpoint.read_safetensors(path, file.data)
        return state_dict, checkpoint.own_safetensors(state_dict, metadata, path)
    if path.suffix == ".safetensors":
        raise SpecRobustError(f"cannot read safetensors file {path}: it does not start with a "
                              "safetensors header")
    payload = checkpoint.read_checkpoint(path, file.data)
    return payload, checkpoint.own_checkpoint(payload, path)


def _no_options_for_self_described(path: Path, source: ModelSource) -> None:
    if source.model_args or source.mean or source.std or (
            source.model and source.model not in MODELS):
        raise SpecRobustError(f"{path} describes its own model; --model-args, --mean and --std "
                              "apply to weights files and user code only")


def _run_checkpoint(run: Path, source: ModelSource) -> LoadedModel:
    # A run reached through a link is written at its real place (outputs are never written
    # through links: specrobust.files.outputs).
    run_dir = run.resolve() if run.is_symlink() else run
    file = files.read_model_file(layout.find_checkpoint(run, source.which))
    own = None if isinstance(file.kind, files.ProgramKind) else _read_weights(file)[1]
    if own is None:
        raise SpecRobustError(f"{file.path} is not a checkpoint specrobust wrote; a run "
                              "directory holds only its own checkpoints")
    return _own(file, own, source, run_dir=run_dir)


def _own(file: files.ModelFile, own: checkpoint.OwnCheckpoint, source: ModelSource,
         run_dir: Path | None) -> LoadedModel:
    path = file.path
    if source.model is not None and source.model != own.spec.name:
        raise SpecRobustError(f"{path} holds a {own.spec.name} model, not {source.model}")
    network = own.build(path)
    norm = own.norm if own.eps else None
    return LoadedModel(network, source.dataset or own.dataset, own.eps, path, run_dir,
                       file.sha256, norm=norm)


def _program(file: files.ModelFile, source: ModelSource) -> LoadedModel:
    path, kind = file.path, file.kind
    dataset, classes, shape = _dataset_shape(source.dataset, f"{kind.name} {path}", source)
    model = _wrap(kind.load(file), f"{kind.short}:{path.name}", classes, shape[0], source)
    return LoadedModel(model, dataset, None, path, None, file.sha256)


def _weights(file: files.ModelFile, payload: dict, source: ModelSource,
             name: str | None = None) -> LoadedModel:
    """The weights in ``payload`` in the architecture ``source.model`` names; ``name``: what the
    model is called (a pretrained entry's name; default the architecture's)."""
    path = file.path
    if source.model is None:
        raise SpecRobustError(f"{path} holds weights without their architecture: name the "
                              "architecture and data with --model and --dataset (a zoo name, "
                              "or path/to/arch.py:factory)")
    state_dict = state_dict_of(payload, path)
    net, architecture, dataset, classes, channels = _architecture(source, f"weights {path}")
    weights, stored = split_normalisation(state_dict, net)
    load_matching(net, weights, path, architecture)
    model = _wrap(net, architecture, classes, channels, source, stored, title=name)
    return LoadedModel(model, dataset, None, path, None, file.sha256)


def _from_factory_alone(source: ModelSource) -> LoadedModel:
    if source.model is None or ":" not in source.model:
        raise SpecRobustError("name a model source: a run directory, a weights file with "
                              "--model, a pretrained name, or --model path/to/arch.py:factory")
    net, name, dataset, classes, channels = _architecture(source, f"--model {source.model}")
    model = _wrap(net, name, classes, channels, source)
    home = Path.cwd() / _safe_stem(source.model)
    return LoadedModel(model, dataset, None, home, None, _state_sha256(model))


def _pretrained(name: str, source: ModelSource) -> LoadedModel:
    from specrobust.loading.pretrained import PRETRAINED, local_file

    entry = PRETRAINED[name]
    path = local_file(entry)
    file = files.read_model_file(path)
    if isinstance(file.kind, files.ProgramKind):
        raise SpecRobustError(f"{path} is {file.kind.name}, not the weights file of {name}; "
                              f"delete it and run `specrobust fetch-model {name}`")
    weights, own = _read_weights(file)
    if own is not None:
        weights = own.state_dict
    # Evaluated on its own dataset, or on the user's when that takes the same images and
    # classes (the probe checks): the record says which data it saw.
    spec = ModelSource(path=str(path), model=entry.architecture,
                       dataset=source.dataset or entry.dataset,
                       mean=source.mean or entry.mean, std=source.std or entry.std,
                       data_root=source.data_root)
    loaded = _weights(file, weights, spec, name=name)
    return dataclasses.replace(loaded, home=Path.cwd() / name, eps=entry.eps,
                               norm=entry.threat_model.lower() if entry.eps else None)


def fetch_pretrained(name: str) -> Path:
    """`specrobust fetch-model NAME`: the entry's file made present and checked, against its
    published SHA-256, or where none was published by loading it into its architecture (the
    file must at least be these weights, key for key and shape for shape)."""
    from specrobust.loading.pretrained import PRETRAINED, fetch

    path = fetch(name)
    entry = PRETRAINED[name]
    if entry.sha256 is None:
        resolve(ModelSource(str(path), model=entry.architecture, dataset=entry.dataset))
    return path


# ---- architectures and normalisation -----------------------------------------------------------


def _dataset_shape(dataset: str | None, what: str,
                   source: ModelSource) -> tuple[str, int, tuple[int, ...]]:
    """(dataset, classes, image shape) of the dataset a source is evaluated on, found where
    ``source.data_root`` says."""
    if dataset is None:
        raise SpecRobustError(f"{what} does not say which data it takes; name it with --dataset")
    from specrobust.data import dataset_facts

    classes, shape = dataset_facts(dataset, source.data_root)
    return dataset, classes, shape


def _architecture(source: ModelSource, what: str):
    """(module, its name, dataset, classes, channels) for ``source.model``."""
    dataset, classes, shape = _dataset_shape(source.dataset, what, source)
    if ":" in source.model:
        net = call_factory(source.model, source.model_args or {})
        return net, source.model, dataset, classes, shape[0]
    if source.model_args:
        raise SpecRobustError("--model-args applies to user code (path/to/arch.py:factory), "
                              f"not to the zoo model {source.model}")
    net = create_model(source.model, classes, shape[0]).net  # raises with the known names
    return net, source.model, dataset, classes, shape[0]


def _wrap(net: nn.Module, name: str, classes: int, channels: int, source: ModelSource,
          stored: dict | None = None, title: str | None = None) -> Classifier:
    """``net`` behind the normalisation it expects: --mean/--std, else mean/std that came with
    its weights, else none. A network that is not the zoo's (user code, a program) runs
    guarded: whatever its forward raises ends in one line. ``title``: the model's name where it
    is not its architecture's (a pretrained entry)."""
    if name not in MODELS:
        _guard(net, name)
    mean, std = source.mean, source.std
    if mean is None and std is None and stored:
        mean, std = stored.get("mean"), stored.get("std")
    if mean is None and std is None and name in DEFAULT_NORMALISATION:
        mean, std = DEFAULT_NORMALISATION[name]
    if (mean is None) != (std is None):
        raise SpecRobustError("give --mean and --std together (or neither)")
    spec = ModelSpec(title or name, classes, channels,
                     None if mean is None else tuple(map(float, mean)),
                     None if std is None else tuple(map(float, std)))
    for values, what in ((spec.mean, "mean"), (spec.std, "std")):
        if values is not None and not all(math.isfinite(v) for v in values):
            raise SpecRobustError(f"the normalisation {what} of {source.describe()} holds NaN or "
                                  "infinite values")
    if spec.std is not None and min(spec.std) <= 0:
        raise SpecRobustError(f"the normalisation std of {source.describe()} must be positive, "
                              f"got {list(spec.std)}")
    return Classifier(spec, net, Normalize(channels, spec.mean, spec.std)).eval()


def _guard(net: nn.Module, name: str) -> None:
    """Make what ``net``'s own forward raises one line naming the model (an attribute of the
    instance: its weights and their names are unchanged)."""
    forward = net.forward

    def guarded(*args, **kwargs):
        return run_user_code(lambda: forward(*args, **kwargs),
                             f"the model {name} failed on a batch (", ")")

    net.forward = guarded


def _state_sha256(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _safe_stem(text: str) -> str:
    stem = Path(text.rpartition(":")[0]).stem + "-" + text.rpartition(":")[2]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)


# ---- the check every model passes ------------------------------------------------------------


def _probe(loaded: LoadedModel, source: ModelSource) -> None:
    """Forward passes on blank images of the dataset's shape: a model that cannot take them,
    or does not return one real logit per class, ends here in one line."""
    if loaded.dataset is None:
        return  # the caller asks for --dataset
    _, classes, shape = _dataset_shape(loaded.dataset, source.describe(), source)
    for batch in (2, 3):  # two sizes: a program exported with a fixed batch size fails here
        with torch.no_grad():
            logits = run_user_code(lambda b=batch: loaded.model(torch.zeros(b, *shape)),
                                   f"{source.describe()} cannot take {batch} of "
                                   f"{loaded.dataset}'s {'x'.join(map(str, shape))} images (",
                                   ")")
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (batch, classes):
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else \
                type(logits).__name__
            raise SpecRobustError(f"{source.describe()} returns {got} for {batch} images of "
                                  f"{loaded.dataset}; expected ({batch}, {classes}) logits")
        if not logits.is_floating_point():
            raise SpecRobustError(f"{source.describe()} returns {logits.dtype} logits; a "
                                  "classifier's logits are floating-point numbers")
        check_finite_logits(logits, f"blank images ({source.describe()})")


__all__ = ["LoadedModel", "ModelSource", "as_source", "fetch_pretrained", "load_model", "resolve"]
