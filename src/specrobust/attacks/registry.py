"""Attacks by name: one registry entry per attack kind, and the named attacks as presets.

An attack kind (``clean``, ``fgsm``, ``pgd``, ``aa``) is an :class:`AttackKind`: its name, a
sentence, its options (each with a default and a parser that checks its range), the function
that attacks one batch, and how many gradient passes it takes. A named attack (``pgd20``,
``cw30``, ...) is a preset: a kind with some options set. Evaluation (``--attacks``), its
self-checks, the analyses and the training loop all ask the registry, so "PGD-20 with step
eps/4" is written once (the ``pgd20`` preset and :func:`specrobust.attacks.pgd.default_step`).

Each kind is defined in the module of its algorithm, as ``KINDS`` and ``PRESETS`` there;
adding an attack is adding a module and its line in ``MODULES`` (or, from user code,
:func:`register`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from specrobust.errors import SpecRobustError

# The modules that define attack kinds, in the order --help lists them.
MODULES = ("specrobust.attacks.clean", "specrobust.attacks.pgd", "specrobust.attacks.autoattack")


@dataclass(frozen=True)
class Option:
    """One option of an attack kind: ``parse(text, what)`` turns ``key=text`` into its value
    (checking its range), ``what`` naming it in errors."""

    name: str
    default: Any
    parse: Callable[[str, str], Any]
    help: str = ""


@dataclass(frozen=True)
class Batch:
    """What an attack gets besides the model and the images: the budget, the threat model,
    a seeded generator for its randomness, the batch's seed (for attacks that seed themselves)
    and a callback for attacks made of stages."""

    eps: float
    norm: str
    generator: torch.Generator
    seed: int
    on_stage: Callable | None = None


def _no_check(options: dict) -> None:
    return None


def _same(options: dict, eps: float) -> dict:
    return dict(options)


@dataclass(frozen=True)
class AttackKind:
    name: str
    description: str
    options: tuple[Option, ...]
    # (model, x, y, options, batch) -> adversarial images within the budget, in [0, 1]
    run: Callable[..., torch.Tensor]
    # options -> forward+backward passes per image; None where it varies
    gradient_steps: Callable[[dict], int | None]
    check: Callable[[dict], None] = _no_check  # what no single option can check alone
    resolved: Callable[[dict, float], dict] = _same  # options as recorded (step sizes at eps)

    def defaults(self) -> dict:
        return {option.name: option.default for option in self.options}


_KINDS: dict[str, AttackKind] = {}
_PRESETS: dict[str, tuple[str, dict]] = {}
_loaded = False


def register(kind: AttackKind, presets: dict[str, dict] | None = None) -> None:
    """Add an attack kind (and named presets of it) to the registry."""
    _load()
    _KINDS[kind.name] = kind
    for name, options in (presets or {}).items():
        _PRESETS[name] = (kind.name, options)


def kinds() -> dict[str, AttackKind]:
    _load()
    return _KINDS


def presets() -> dict[str, tuple[str, dict]]:
    """Named attack -> (kind, the options it sets)."""
    _load()
    return _PRESETS


def kind(name: str) -> AttackKind:
    _load()
    if name not in _KINDS:
        raise SpecRobustError(f"unknown attack kind {name!r}; known: {', '.join(_KINDS)}")
    return _KINDS[name]


def preset(name: str) -> dict:
    """Every option of a named attack: ``preset("pgd20")["steps"]`` is 20."""
    kind_name, options = presets()[name]
    return {**kind(kind_name).defaults(), **options}


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for entry in module.KINDS:
            _KINDS[entry.name] = entry
        for name, (kind_name, options) in module.PRESETS.items():
            _PRESETS[name] = (kind_name, options)


# ---- option parsers (``key=value`` text -> value, ranges checked) -------------------------------


def whole(low: int, high: int) -> Callable[[str, str], int]:
    def parse(text: str, what: str) -> int:
        from specrobust.numbers import check_range, parse_whole

        return int(check_range(parse_whole(text, what), what, low, high))
    return parse


def budget_fraction(text: str, what: str) -> float:
    """A step size such as ``2/255``, in (0, 1]."""
    from specrobust.numbers import check_range, parse_fraction

    return check_range(parse_fraction(text, what), what, 0, 1, low_open=True)


def flag(text: str, what: str) -> bool:
    if text.lower() not in ("0", "1", "true", "false", "yes", "no"):
        from specrobust.errors import quoted

        raise SpecRobustError(f"{what} must be 0 or 1, got {quoted(text)}")
    return text.lower() in ("1", "true", "yes")


def choice(values: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(text: str, what: str) -> str:
        if text not in values:
            from specrobust.errors import quoted

            raise SpecRobustError(f"{what} must be one of {', '.join(values)}, got {quoted(text)}")
        return text
    return parse
