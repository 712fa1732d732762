"""Checkpoints and run directories: writing them, and finding and loading a model from any of
the things a user may hand over.

A specrobust checkpoint is a ``torch.save`` dict that ``torch.load(weights_only=True)`` can read
(tensors, numbers, strings, lists and dicts only; never pickled code)::

    {"format": "specrobust-checkpoint", "format_version": 1,
     "model": ModelSpec.as_dict(), "dataset": "fashion-mnist", "eps": "0.1",
     "state_dict": {...},            # the Classifier's weights
     "training": {...}}              # optional: the full resume state (written by training)

``load_model`` accepts a run directory, such a checkpoint, a safetensors file written by
specrobust, or a plain ``state_dict`` of a registry model (then ``model`` and ``dataset`` must be
named, since a bare state dict does not say what it is).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from specrobust import atomic
from specrobust.defaults import CHECKPOINTS
from specrobust.errors import SpecRobustError
from specrobust.models import Classifier, ModelSpec

FORMAT = "specrobust-checkpoint"
FORMAT_VERSION = 1

# Inside a run directory. "auto" picks the first of CHECKPOINTS that exists: the averaged
# model's best checkpoint when the run averages weights, else the raw best, else the last.
CHECKPOINT_DIR = "checkpoints"
WEIGHTS_DIR = "weights"


@dataclass
class LoadedModel:
    model: Classifier
    dataset: str | None  # the dataset it was trained on, when the file says so
    eps: str | None  # the training budget, when the file says so
    path: Path  # the file the weights came from
    run_dir: Path | None  # the run directory, when there is one
    sha256: str  # of the weights file: identifies the model for resumable evaluations
    # Default outputs outside a run go beside this path, named after its stem (the weights
    # file; ./NAME for a model named without a file of its own).
    home: Path | None = None
    norm: str | None = None  # the threat model it was trained in, when the file says so

    def __post_init__(self):
        if self.home is None:
            self.home = self.path


def save_checkpoint(path: str | Path, model: Classifier, *, dataset: str, eps: str | None = None,
                    training: dict | None = None, norm: str = "linf") -> None:
    """Write a checkpoint atomically."""
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model": model.spec.as_dict(), "dataset": dataset, "eps": eps,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if norm != "linf":  # checkpoints without one were trained in L-inf
        payload["norm"] = norm
    if training is not None:
        payload["training"] = training
    atomic.write_with(path, lambda out: torch.save(payload, out))


def export_safetensors(path: str | Path, model: Classifier, *, dataset: str,
                       eps: str | None = None, norm: str = "linf") -> None:
    """Weights only, in safetensors (no code can hide in it); the model description rides in
    the file's metadata so ``load_model`` can rebuild the model from it alone."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "model": json.dumps(model.spec.as_dict()), "dataset": dataset,
                "eps": eps or "", **({"norm": norm} if norm != "linf" else {})}
    atomic.write_bytes(path, save(tensors, metadata=metadata))


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True`` and one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise SpecRobustError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - torch.load fails in many ways on junk files
        text = str(error)
        # weights_only names the global it would not import: code or a class, never data.
        named = re.search(r"(?:GLOBAL|[Uu]nsupported global:?)\s+([\w.]+)", text)
        if isinstance(error, pickle.UnpicklingError) and named:
            raise SpecRobustError(
                f"{path} holds objects other than tensors and plain data ({named.group(1)}); "
                "refused, since loading it could run code (re-save its state_dict)"
            ) from None
        raise SpecRobustError(f"cannot read checkpoint {path}: not a PyTorch file, or truncated "
                              f"({type(error).__name__}: {_first_words(_cause(text))})") from None
    if not isinstance(payload, dict):
        raise SpecRobustError(f"{path} holds a {type(payload).__name__}, not a checkpoint dict")
    return payload


def _cause(text: str) -> str:
    """The line of a ``torch.load`` error that says what was wrong, past its boilerplate about
    the ``weights_only`` default."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(boilerplate)]
    return (useful or lines or ["?"])[0]


def _first_words(text: str, limit: int = 100) -> str:
    """The first line of ``text``, cut at a word boundary when longer than ``limit``."""
    line = (text or "?").splitlines()[0] if (text or "?").strip() else "?"
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0] + " …"


def find_weights(run_dir: Path, which: str = "auto") -> Path:
    """The checkpoint file of a run directory: ``which`` is one of CHECKPOINTS or ``auto``."""
    if which != "auto" and which not in CHECKPOINTS:
        raise SpecRobustError(f"unknown checkpoint {which!r}; choose auto or one of "
                              f"{', '.join(CHECKPOINTS)}")
    directory = run_dir / CHECKPOINT_DIR
    if not directory.is_dir():
        raise SpecRobustError(f"{run_dir} is a directory but not a run directory (it has no "
                              f"{CHECKPOINT_DIR}/)")
    for name in CHECKPOINTS if which == "auto" else (which,):
        candidate = directory / f"{name}.pt"
        if candidate.is_file():
            return candidate
    present = ", ".join(sorted(p.stem for p in directory.glob("*.pt"))) or "none"
    raise SpecRobustError(f"{run_dir} has no {which} checkpoint (present: {present})")


def load_model(source: str | Path, *, which: str = "auto", model: str | None = None,
               dataset: str | None = None) -> LoadedModel:
    """Rebuild a model from a run directory or a weights file (see the module docstring).

    ``model`` / ``dataset`` describe a plain state dict; for files that describe themselves
    they must agree with the file, so a mistaken ``--model`` is caught instead of ignored.
    """
    source = Path(source)
    if not source.exists():
        raise SpecRobustError(f"checkpoint or run directory {source} does not exist")
    # A run reached through a link is written at its real place (outputs are never written
    # through links: specrobust.outputs).
    run_dir = (source.resolve() if source.is_symlink() else source) if source.is_dir() else None
    path = find_weights(source, which) if run_dir else source

    if path.suffix == ".safetensors":
        state_dict, described = _read_safetensors(path)
    else:
        payload = read_checkpoint(path)
        if payload.get("format") == FORMAT:
            if not isinstance(payload.get("state_dict"), dict) or \
                    not isinstance(payload.get("model"), dict):
                raise SpecRobustError(f"{path} says it is a specrobust checkpoint but lacks its "
                                      "weights or model description; it is damaged")
            state_dict = payload["state_dict"]
            described = {"model": payload["model"], "dataset": payload.get("dataset"),
                         "eps": payload.get("eps"), "norm": payload.get("norm", "linf")}
        else:
            state_dict, described = _unwrap_state_dict(payload, path), None

    if described is not None:
        spec = ModelSpec.from_dict(described["model"])
        if model is not None and model != spec.name:
            raise SpecRobustError(f"{path} holds a {spec.name} model, not {model}")
        trained_on = described.get("dataset") or None
        dataset = dataset or trained_on
        eps = described.get("eps") or None
    else:
        spec = _spec_for_plain_state_dict(path, model, dataset, state_dict)
        eps = None

    network = spec.build()
    _load_weights(network, state_dict, path)
    network.eval()
    norm = (described or {}).get("norm") or ("linf" if eps else None)
    return LoadedModel(network, dataset, eps, path, run_dir, sha256_of(path), norm=norm)


def _read_safetensors(path: Path) -> tuple[dict, dict | None]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        state_dict = load_file(path)
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, ValueError, OSError) as error:
        raise SpecRobustError(f"cannot read safetensors file {path} ({error})") from None
    if metadata.get("format") != FORMAT:
        return state_dict, None
    try:
        model = json.loads(metadata["model"])
    except (KeyError, TypeError, ValueError):
        raise SpecRobustError(f"{path} says it was written by specrobust but its metadata has no "
                              "readable model description; re-export it") from None
    return state_dict, {"model": model, "dataset": metadata.get("dataset"),
                        "eps": metadata.get("eps"), "norm": metadata.get("norm", "linf")}


def _unwrap_state_dict(payload: dict, path: Path) -> dict:
    """Plain state dicts come bare or wrapped under a usual key."""
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(payload.get(key), dict):
            payload = payload[key]
            break
    if not payload or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise SpecRobustError(f"{path} is neither a specrobust checkpoint nor a state_dict of "
                              "tensors")
    return payload


def _spec_for_plain_state_dict(path: Path, model: str | None, dataset: str | None,
                               state_dict: dict) -> ModelSpec:
    if model is None or dataset is None:
        raise SpecRobustError(f"{path} is a plain state_dict; name its architecture and data with "
                              "--model and --dataset")
    from specrobust.data import get_dataset_info, parse_dataset_name

    name, options = parse_dataset_name(dataset)
    info = get_dataset_info(name)
    channels, classes = info.image_shape[0], info.num_classes
    if info.generated:
        from specrobust.data import SyntheticSpec

        synthetic = SyntheticSpec.from_options(options)
        channels, classes = synthetic.channels, synthetic.num_classes
    return ModelSpec(model, classes, channels)


WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


def _load_weights(network: Classifier, state_dict: dict, path: Path) -> None:
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise SpecRobustError(f"{path} holds weights that are not a mapping of names to tensors")
    state_dict = strip_wrapper_prefixes(
        {k: v for k, v in state_dict.items() if k != "n_averaged"}, WRAPPER_PREFIXES)
    target: torch.nn.Module = network
    if not any(k.startswith(("net.", "normalize.")) for k in state_dict):
        target = network.net  # a bare architecture's state dict
    try:
        target.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        missing, unexpected = _key_mismatch(target, state_dict)
        if missing or unexpected:
            detail = (f"{len(missing)} missing keys (e.g. {missing[:2]}), {len(unexpected)} "
                      f"unexpected (e.g. {unexpected[:2]})")
        else:
            detail = _first_shape_mismatch(str(error))
        raise SpecRobustError(f"{path} does not fit a {network.spec.name} model with "
                              f"{network.spec.num_classes} classes and "
                              f"{network.spec.in_channels} channels: {detail}") from None


def strip_wrapper_prefixes(state_dict: dict, prefixes: tuple[str, ...]) -> dict:
    """``state_dict`` with wrapper prefixes removed from its keys, however nested
    (``module._orig_mod.``)."""
    stripped = OrderedDict(state_dict)
    while True:
        keys = list(stripped)
        for prefix in prefixes:
            consume_prefix_in_state_dict_if_present(stripped, prefix)
        if list(stripped) == keys:
            return dict(stripped)


def _key_mismatch(module: torch.nn.Module, state_dict: dict) -> tuple[list[str], list[str]]:
    expected = set(module.state_dict())
    return sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)


def _first_shape_mismatch(message: str) -> str:
    for line in message.splitlines():
        if "size mismatch" in line:
            return line.strip().rstrip(".")
    return message.splitlines()[0]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

