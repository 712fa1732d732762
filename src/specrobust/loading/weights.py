"""State dicts from files: unwrapped from the holders and prefixes other code saves them in,
checked, and loaded into an architecture with one-line errors. Never runs code (files are read
with ``weights_only=True`` or as safetensors)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from specrobust.checkpoint import BOOKKEEPING, check_values
from specrobust.errors import SpecRobustError

# Keys under which checkpoints in the wild keep their weights, tried in this order.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "net", "model")
# Prefixes that wrappers add to every key: DataParallel / DDP, torch.compile, a `model.` holder,
# specrobust's own Classifier (`net.`).
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.", "net.")
# Normalisation stored beside the weights: bare (`mean`, `std`) or a Classifier's.
STORED_NORMALISATION = {"mean": "mean", "std": "std",
                        "normalize.mean": "mean", "normalize.std": "std"}
# Weights that TRADES' WideResNet builds but never calls; dropped where the architecture has
# no such part (models/trades_wideresnet.py).
_NEVER_USED = ("sub_block1.",)


def state_dict_of(payload: dict, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a ``torch.save`` file's content, bare or under a usual holder key."""
    for key in WRAPPER_KEYS:
        if isinstance(payload.get(key), dict) and payload[key]:
            payload = payload[key]
            break
    tensors = {k: v for k, v in payload.items() if isinstance(v, torch.Tensor)}
    if not tensors or not all(isinstance(k, str) for k in tensors) or len(tensors) < len(payload):
        held = ", ".join(map(str, list(payload)[:6]))
        raise SpecRobustError(f"{path} is neither a specrobust checkpoint nor a state_dict of "
                              f"tensors (its keys: {held}); save model.state_dict()")
    return tensors


def split_normalisation(state_dict: dict, net: nn.Module) -> tuple[dict, dict]:
    """(weights, stored normalisation as lists) where the architecture has no such keys."""
    own = set(net.state_dict())
    stored, weights = {}, {}
    for key, value in state_dict.items():
        bare = _without_prefixes(key)
        if bare in STORED_NORMALISATION and key not in own:
            stored[STORED_NORMALISATION[bare]] = value.flatten().tolist()
        else:
            weights[key] = value
    return weights, stored


def _without_prefixes(key: str) -> str:
    while key.startswith(WRAPPER_PREFIXES[:3]):
        key = key.split(".", 1)[1]
    return key


def load_matching(net: nn.Module, state_dict: dict, path: Path, name: str) -> None:
    """Load ``state_dict`` into ``net`` (called ``name`` in messages), stripping wrapper
    prefixes where that makes the keys match; otherwise one line naming the first missing and
    unexpected keys, and the fix where a prefix explains them."""
    check_values(state_dict, path)
    expected = set(net.state_dict())
    candidate = {k: v for k, v in state_dict.items() if not k.endswith(BOOKKEEPING)}
    for _ in range(4):  # one wrapper at a time, until the keys are the architecture's
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
        raise SpecRobustError(f"{path} does not fit a {name} model: {len(missing)} missing "
                              f"keys (first {missing[:2]}), {len(unexpected)} unexpected (first "
                              f"{unexpected[:2]}){_prefix_hint(missing, unexpected)}")
    try:
        net.load_state_dict(candidate, strict=True)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        first = (lines or [str(error).splitlines()[0]])[0].rstrip(".")
        raise SpecRobustError(f"{path} does not fit a {name} model: {first}") from None


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
