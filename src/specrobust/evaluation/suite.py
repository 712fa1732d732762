"""Attack lists as users write them (``--attacks``), over the attack registry
(``specrobust.attacks.registry``): the named attacks and the parameterised forms of each kind.

Names (the paper's evaluation at eps; step sizes default to eps/4, which is 2/255 at 8/255).
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

from dataclasses import dataclass, field

import torch
from torch import nn

from specrobust import seeds
from specrobust.attacks import registry
from specrobust.attacks.autoattack import StageCallback
from specrobust.errors import SpecRobustError, quoted


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
        options = registry.kind(self.kind).resolved(self.options, eps)
        return {"label": self.label, "kind": self.kind, "options": options}

    @property
    def gradient_steps(self) -> int | None:
        """Forward+backward passes per image (restarts included); None where it varies (AA)."""
        return registry.kind(self.kind).gradient_steps(self.options)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
            seed: int, on_stage: StageCallback | None = None,
            norm: str = "linf") -> torch.Tensor:
        """Adversarial images for one batch within the ``norm`` ball (linf or l2); ``seed``
        makes the batch's randomness repeatable (so a resumed evaluation draws exactly what an
        uninterrupted one would have). ``on_stage`` hears about each stage of attacks made of
        stages (AutoAttack)."""
        batch = registry.Batch(eps, norm, seeds.generator(seed, x.device), seed, on_stage)
        return registry.kind(self.kind).run(model, x, y, self.options, batch)


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
    presets, kinds = registry.presets(), registry.kinds()
    if name in presets and not colon:
        return AttackSpec(name, presets[name][0], registry.preset(name))
    if name not in kinds or (colon and not kinds[name].options):
        known = ", ".join([*presets, *(f"{k}:key=value" for k, kind in kinds.items()
                                       if kind.options)])
        raise SpecRobustError(f"unknown attack {quoted(text)}; known: {known}")
    kind = kinds[name]
    options = kind.defaults()
    parsers = {option.name: option.parse for option in kind.options}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in parsers:
            raise SpecRobustError(f"{name} option {quoted(item)} is not one of "
                                  f"{', '.join(k + '=...' for k in parsers)}")
        options[key] = parsers[key](value.strip(), f"{name} option {key}")
    kind.check(options)
    return AttackSpec(f"{name}:{rest.strip()}" if rest.strip() else name, name, options)
