"""specrobust's own checkpoint format: writing it, and reading it back. Nothing else.

A specrobust checkpoint is a ``torch.save`` dict that ``torch.load(weights_only=True)`` can read
(tensors, numbers, strings, lists and dicts only; never pickled code)::

    {"format": "specrobust-checkpoint", "format_version": 1,
     "model": ModelSpec.as_dict(), "dataset": "fashion-mnist", "eps": "0.1",
     "state_dict": {...},            # the Classifier's weights
     "training": {...}}              # optional: the full resume state (written by training)

Its code-free twin is a safetensors file whose metadata carries the same description
(:func:`export_safetensors`). Every other kind of model file (other people's weights, programs,
user code, pretrained names) is the resolver's (``specrobust.loading``).
"""

from __future__ import annotations

import io
import json
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from specrobust.errors import SpecRobustError
from specrobust.files import storage
from specrobust.files.layout import CHECKPOINT_FORMAT as FORMAT
from specrobust.files.ziparchive import DEFLATED, STORED, Archive, rebuild
from specrobust.models import Classifier, ModelSpec

FORMAT_VERSION = 1
# Bookkeeping of torch.optim.swa_utils.AveragedModel, not a weight.
BOOKKEEPING = "n_averaged"


@dataclass
class OwnCheckpoint:
    """What a specrobust checkpoint or its safetensors twin holds."""

    spec: ModelSpec
    state_dict: dict
    dataset: str | None
    eps: str | None
    norm: str  # the threat model it was trained in

    def build(self, path: Path) -> Classifier:
        """The model, with these weights, in eval mode."""
        network = self.spec.build()
        load_exactly(network, self.state_dict, path)
        return network.eval()

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
    storage.write_with(path, lambda out: torch.save(payload, out))


def export_safetensors(path: str | Path, model: Classifier, *, dataset: str,
                       eps: str | None = None, norm: str = "linf") -> None:
    """Weights only, in safetensors (no code can hide in it); the model description rides in
    the file's metadata so ``load_model`` can rebuild the model from it alone."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "model": json.dumps(model.spec.as_dict()), "dataset": dataset,
                "eps": eps or "", **({"norm": norm} if norm != "linf" else {})}
    storage.write_bytes(path, save(tensors, metadata=metadata))


# Larger than any checkpoint of the zoo (WRN-70-16 with its optimizer state is about 3.3 GB).
MAX_CHECKPOINT_BYTES = 8 << 30


def read_checkpoint(path: str | Path, data: bytes | None = None) -> dict:
    """The dict in a ``torch.save`` file (its bytes ``data`` when already read), read with
    ``weights_only=True`` and one-line errors. torch's reader gets an archive rebuilt from what
    specrobust's own ZIP reader parsed, never the file itself (``specrobust.files.ziparchive``)."""
    path = Path(path)
    if data is None:
        try:
            data = storage.read_regular(path, "checkpoint", MAX_CHECKPOINT_BYTES)
        except FileNotFoundError:
            raise SpecRobustError(f"checkpoint {path} does not exist") from None
        except OSError as error:
            raise SpecRobustError(f"cannot read checkpoint {path} ({error.strerror})") from None
    if data[:4] == b"PK\x03\x04":
        archive = Archive.of_bytes(data, f"checkpoint {path}", methods=(STORED, DEFLATED),
                                   max_size=MAX_CHECKPOINT_BYTES)
        data = rebuild(archive)
    elif _is_plain_pickle(data):
        raise SpecRobustError(
            f"{path} is a plain Python pickle, not a file torch.save wrote; refused, since "
            "unpickling it could run code (re-save it with torch.save(model.state_dict()))")
    else:  # torch's format before 1.6: a pickle read by the same weights-only unpickler
        _check_legacy_sizes(data, path)
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
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


def _check_legacy_sizes(data: bytes, path: Path) -> None:
    """torch's legacy format (before 1.6) allocates each storage at the size its pickle
    declares before reading its bytes: read the pickle once with torch's weights-only
    unpickler, storages on the meta device (nothing allocated), and refuse declared sizes
    that the file cannot hold."""
    from torch import _weights_only_unpickler as unpickler

    declared = 0

    def storage(pid):
        nonlocal declared
        if not (isinstance(pid, tuple) and len(pid) >= 5):
            raise pickle.UnpicklingError("not a storage")
        dtype, numel = getattr(pid[1], "dtype", None), pid[4]
        if not isinstance(dtype, torch.dtype) or type(numel) is not int or numel < 0:
            raise pickle.UnpicklingError("not a storage")
        nbytes = numel * torch._utils._element_size(dtype)
        declared += nbytes
        if declared > len(data):
            raise SpecRobustError(f"checkpoint {path} declares {declared:,} bytes of weights "
                                  f"in a file of {len(data):,}; it is damaged")
        return torch.storage.TypedStorage(
            wrap_storage=torch.UntypedStorage(nbytes, device="meta"), dtype=dtype,
            _internal=True)

    stream = io.BytesIO(data)
    try:
        for _ in range(3):  # the magic number, the protocol version, the system's description
            unpickler.load(stream, encoding="utf-8")
        reader = unpickler.Unpickler(stream, encoding="utf-8")
        reader.persistent_load = storage
        reader.load()
    except SpecRobustError:
        raise
    except Exception:  # noqa: BLE001, S110 - not this format: torch.load below says what it is
        pass


def _is_plain_pickle(data: bytes) -> bool:
    """A ``pickle.dump`` file of protocol 2 or later (torch.save's legacy format is a pickle
    too, but one whose first object is its magic number, a long integer)."""
    return len(data) >= 3 and data[0] == 0x80 and 2 <= data[1] <= 5 and data[2] != 0x8A


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


def read_safetensors(path: Path, data: bytes) -> tuple[dict, dict]:
    """The tensors and metadata of a safetensors file's bytes; no code can hide in this
    format. The header is read once here for its metadata (a key named twice is refused, so
    this reading and the library's cannot differ) before the library reads the tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    size = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8:8 + size], object_pairs_hook=_unique_keys)
        metadata = (header.get("__metadata__") or {}) if isinstance(header, dict) else None
        if not isinstance(metadata, dict):
            raise ValueError("its header is not a JSON object with a metadata object")
        state_dict = load(data)
    except (SafetensorError, ValueError, RecursionError, OSError) as error:
        raise SpecRobustError(f"cannot read safetensors file {path} ({_first_words(str(error))})"
                              ) from None
    return dict(state_dict), {str(k): str(v) for k, v in metadata.items()}


def _unique_keys(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("its header names a key twice")
    return dict(pairs)


def own_checkpoint(payload: dict, path: Path) -> OwnCheckpoint | None:
    """The description in ``payload`` (a ``torch.save`` file's content) when specrobust wrote
    it; None for anyone else's file."""
    if payload.get("format") != FORMAT:
        return None
    if not isinstance(payload.get("state_dict"), dict) or \
            not isinstance(payload.get("model"), dict):
        raise SpecRobustError(f"{path} says it is a specrobust checkpoint but lacks its weights "
                              "or model description; it is damaged")
    return OwnCheckpoint(ModelSpec.from_dict(payload["model"]), payload["state_dict"],
                         _text_or_none(payload.get("dataset"), path),
                         _text_or_none(payload.get("eps"), path),
                         _text_or_none(payload.get("norm"), path) or "linf")


def own_safetensors(state_dict: dict, metadata: dict, path: Path) -> OwnCheckpoint | None:
    """The same for a safetensors file: its metadata describes the model when specrobust
    exported it."""
    if metadata.get("format") != FORMAT:
        return None
    try:
        model = json.loads(metadata["model"])
        spec = ModelSpec.from_dict(model)
    except (KeyError, TypeError, ValueError, RecursionError, SpecRobustError):
        raise SpecRobustError(f"{path} says it was written by specrobust but its metadata has no "
                              "readable model description; re-export it") from None
    return OwnCheckpoint(spec, state_dict, metadata.get("dataset") or None,
                         metadata.get("eps") or None, metadata.get("norm") or "linf")


def read_own(path: Path) -> OwnCheckpoint:
    """A checkpoint that must be specrobust's own (a run's): anything else is refused."""
    payload = read_checkpoint(path)
    own = own_checkpoint(payload, path)
    if own is None:
        raise SpecRobustError(f"{path} is not a checkpoint specrobust wrote (it has no "
                              f"{FORMAT!r} tag); a run directory holds only its own checkpoints")
    return own


def _text_or_none(value, path: Path) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise SpecRobustError(f"{path} is damaged: a description field holds a "
                          f"{type(value).__name__}, not text")


def load_exactly(network: nn.Module, state_dict: dict, path: Path) -> None:
    """A specrobust checkpoint's weights into the Classifier it describes (keys ``net.*`` and
    ``normalize.*``, possibly behind DDP's or torch.compile's prefix)."""
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise SpecRobustError(f"{path} holds weights that are not a mapping of names to tensors")
    check_values(state_dict, path)
    stripped = OrderedDict((k, v) for k, v in state_dict.items() if k != BOOKKEEPING)
    for _ in range(4):
        before = list(stripped)
        for prefix in ("module.", "_orig_mod."):
            consume_prefix_in_state_dict_if_present(stripped, prefix)
        if list(stripped) == before:
            break
    spec = network.spec
    try:
        network.load_state_dict(stripped, strict=True)
    except RuntimeError as error:
        expected = set(network.state_dict())
        missing, unexpected = sorted(expected - set(stripped)), sorted(set(stripped) - expected)
        if missing or unexpected:
            detail = (f"{len(missing)} missing keys (e.g. {missing[:2]}), {len(unexpected)} "
                      f"unexpected (e.g. {unexpected[:2]})")
        else:
            lines = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
            detail = (lines or [str(error).splitlines()[0]])[0].rstrip(".")
        raise SpecRobustError(f"{path} does not fit a {spec.name} model with {spec.num_classes} "
                              f"classes and {spec.in_channels} channels: {detail}") from None


def check_values(state_dict: dict, path: Path) -> None:
    """Weights a model can compute with: real numbers, all finite."""
    for key, value in state_dict.items():
        if value.is_complex():
            raise SpecRobustError(f"{path}: weight {key!r} is complex; a classifier's weights "
                                  "are real")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise SpecRobustError(f"{path}: weight {key!r} holds NaN or infinite values; the "
                                  "model is damaged (or diverged while training)")
