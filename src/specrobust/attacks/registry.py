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

Attack lists as users write them (``--attacks``, :func:`parse_attacks`). Names (the paper's
evaluation at eps; step sizes default to eps/4, which is 2/255 at 8/255).
Every attack runs in the evaluation's threat model, L-inf or L2 (``--norm``):

    clean        no attack
    fgsm         one gradient step of size eps (signed for L-inf, L2-normalised for L2)
    pgd20        PGD, CE loss, 20 steps, random start, 1 restart
    pgd50        the same with 50 steps
    cw30         PGD on the C&W margin loss, 30 steps (the paper's C&W-inf)
    aa           AutoAttack, standard version (APGD-CE, APGD-T, FAB-T, Square)
    aa-apgd-ce   AutoAttack's APGD-CE alone

Parameterised forms take ``key=value`` options after a colon:

    pgd:steps=100,restarts=5,alpha=0.5/255,loss=cw,band=low,random_start=0
    fgsm:random_start=1,alpha=10/255
    aa:version=rand            aa:attacks=apgd-ce+apgd-t   (a custom AutoAttack)

In a comma-separated list, a ``key=value`` item continues the attack before it, so
``clean,pgd:steps=100,restarts=5,aa`` is three attacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from specrobust import seeds
from specrobust.errors import SpecRobustError, quoted
from specrobust.registry import Registry

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


# Attack kinds, and the named attacks that are presets of them ("pgd20": pgd with 20 steps),
# registered by the modules that define them, imported on the first lookup.
KINDS: Registry[AttackKind] = Registry("attack kind", modules=MODULES)
NAMED: Registry[tuple[str, dict]] = Registry("attack", modules=MODULES)


def register(kind: AttackKind, presets: dict[str, dict] | None = None) -> AttackKind:
    """Add an attack kind, and named presets of it (name -> the options they set)."""
    KINDS.add(kind.name, kind)
    for name, options in (presets or {}).items():
        NAMED.add(name, (kind.name, options))
    return kind


def preset(name: str) -> dict:
    """Every option of a named attack: ``preset("pgd20")["steps"]`` is 20."""
    kind_name, options = NAMED[name]
    return {**KINDS[kind_name].defaults(), **options}


# ---- attack lists as users write them -------------------------------------------------------


@dataclass(frozen=True)
class AttackSpec:
    """One attack of an evaluation: how it is shown (``label``), what runs (``kind`` and
    ``options``, every option filled in)."""

    label: str
    kind: str
    options: dict = field(hash=False)

    def alpha(self, eps: float) -> float:
        """The step size at budget ``eps`` (gradient attacks)."""
        return self.describe(eps)["options"]["alpha"]

    def describe(self, eps: float) -> dict:
        """Plain-data description with the step size resolved, for eval.json."""
        options = KINDS[self.kind].resolved(self.options, eps)
        return {"label": self.label, "kind": self.kind, "options": options}

    @property
    def gradient_steps(self) -> int | None:
        """Forward+backward passes per image (restarts included); None where it varies (AA)."""
        return KINDS[self.kind].gradient_steps(self.options)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
            seed: int, on_stage: Callable | None = None,
            norm: str = "linf") -> torch.Tensor:
        """Adversarial images for one batch within the ``norm`` ball (linf or l2); ``seed``
        makes the batch's randomness repeatable (so a resumed evaluation draws exactly what an
        uninterrupted one would have). ``on_stage`` hears about each stage of attacks made of
        stages (AutoAttack)."""
        batch = Batch(eps, norm, seeds.generator(seed, x.device), seed, on_stage)
        return KINDS[self.kind].run(model, x, y, self.options, batch)


def parse_attacks(text: str) -> list[AttackSpec]:
    """``"clean,pgd20,pgd:steps=100,restarts=5,aa"`` -> attack specs (labels unique)."""
    groups: list[list[str]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        continues = "=" in item and ":" not in item
        if continues:
            if not groups or ":" not in groups[-1][0]:
                raise SpecRobustError(f"attack option {quoted(item)} does not follow a "
                                      "parameterised attack such as pgd:steps=100")
            groups[-1].append(item)
        else:
            groups.append([item])
    if not groups:
        raise SpecRobustError("no attacks given; e.g. --attacks clean,pgd20,aa")
    specs = [parse_attack(",".join(group)) for group in groups]
    labels = [spec.label for spec in specs]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise SpecRobustError(f"attack {quoted(duplicates[0])} is listed twice")
    return specs


def parse_attack(text: str) -> AttackSpec:
    name, colon, rest = text.partition(":")
    name = name.strip()
    if name in NAMED and not colon:
        return AttackSpec(name, NAMED[name][0], preset(name))
    if name not in KINDS or (colon and not KINDS[name].options):
        known = ", ".join([*NAMED, *(f"{k}:key=value" for k, entry in KINDS.items()
                                     if entry.options)])
        raise SpecRobustError(f"unknown attack {quoted(text)}; known: {known}")
    entry = KINDS[name]
    options = entry.defaults()
    parsers = {option.name: option.parse for option in entry.options}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in parsers:
            raise SpecRobustError(f"{name} option {quoted(item)} is not one of "
                                  f"{', '.join(k + '=...' for k in parsers)}")
        options[key] = parsers[key](value.strip(), f"{name} option {key}")
    entry.check(options)
    return AttackSpec(f"{name}:{rest.strip()}" if rest.strip() else name, name, options)


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
        raise SpecRobustError(f"{what} must be 0 or 1, got {quoted(text)}")
    return text.lower() in ("1", "true", "yes")


def choice(values: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(text: str, what: str) -> str:
        if text not in values:
            raise SpecRobustError(f"{what} must be one of {', '.join(values)}, got {quoted(text)}")
        return text
    return parse
