"""Attacks by name: the standard suite and its parameterised forms.

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

from specrobust import fourier, seeds
from specrobust.attacks import autoattack, fgsm, pgd
from specrobust.attacks.autoattack import ATTACKS as AA_ATTACKS
from specrobust.attacks.autoattack import VERSIONS as AA_VERSIONS
from specrobust.attacks.autoattack import StageCallback
from specrobust.attacks.losses import LOSSES
from specrobust.errors import SpecRobustError, quoted
from specrobust.numbers import check_range, parse_fraction, parse_whole

BANDS = ("low", "mid", "high")

# name -> (kind, options). Options left out take the defaults in _DEFAULTS.
NAMED: dict[str, tuple[str, dict]] = {
    "clean": ("clean", {}),
    "fgsm": ("fgsm", {}),
    "pgd20": ("pgd", {"steps": 20}),
    "pgd50": ("pgd", {"steps": 50}),
    "cw30": ("pgd", {"steps": 30, "loss": "cw"}),
    "aa": ("aa", {}),
    "aa-apgd-ce": ("aa", {"attacks": ("apgd-ce",)}),
}
KINDS = ("clean", "fgsm", "pgd", "aa")
_DEFAULTS: dict[str, dict] = {
    "clean": {},
    "fgsm": {"random_start": False, "alpha": None},
    "pgd": {"steps": 20, "restarts": 1, "alpha": None, "loss": "ce", "band": None,
            "random_start": True},
    "aa": {"version": "standard", "attacks": None},
}


@dataclass(frozen=True)
class AttackSpec:
    """One attack of an evaluation: how it is shown (``label``), what runs (``kind`` and
    ``options``, every option filled in)."""

    label: str
    kind: str
    options: dict = field(hash=False)

    def alpha(self, eps: float) -> float:
        return self.options["alpha"] if self.options.get("alpha") is not None else eps / 4

    def describe(self, eps: float) -> dict:
        """Plain-data description with the step size resolved, for eval.json."""
        options = dict(self.options)
        if "alpha" in options:
            options["alpha"] = self.alpha(eps) if self.kind == "pgd" else options["alpha"]
        if options.get("attacks"):
            options["attacks"] = list(options["attacks"])
        return {"label": self.label, "kind": self.kind, "options": options}

    @property
    def gradient_steps(self) -> int | None:
        """Forward+backward passes per image (restarts included); None where it varies (AA)."""
        if self.kind == "fgsm":
            return 1
        if self.kind == "pgd":
            return self.options["steps"] * self.options["restarts"]
        return 0 if self.kind == "clean" else None

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
            seed: int, on_stage: StageCallback | None = None,
            norm: str = "linf") -> torch.Tensor:
        """Adversarial images for one batch within the ``norm`` ball (linf or l2); ``seed``
        makes the batch's randomness repeatable (so a resumed evaluation draws exactly what an
        uninterrupted one would have). ``on_stage`` hears about each of AutoAttack's attacks
        (ignored by the others)."""
        options = self.options
        generator = seeds.generator(seed, x.device)
        if self.kind == "clean":
            return x
        if self.kind == "fgsm":
            return fgsm(model, x, y, eps, random_start=options["random_start"],
                        alpha=options["alpha"], norm=norm, generator=generator)
        if self.kind == "pgd":
            mask = None
            if options["band"] is not None:
                mask = fourier.default_bands(tuple(x.shape[-2:]), device=x.device)[options["band"]]
            return pgd(model, x, y, eps, self.alpha(eps), options["steps"],
                       random_start=options["random_start"], restarts=options["restarts"],
                       loss=options["loss"], norm=norm, mask=mask, generator=generator)
        version = "custom" if options["attacks"] else options["version"]
        return autoattack(model, x, y, eps, norm=norm, version=version,
                          attacks=list(options["attacks"]) if options["attacks"] else None,
                          batch_size=len(x), seed=seed, on_stage=on_stage)


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
        kind, options = NAMED[name]
        return AttackSpec(name, kind, {**_DEFAULTS[kind], **options})
    if name not in KINDS or (name == "clean" and colon):
        known = ", ".join([*NAMED, *(f"{k}:key=value" for k in KINDS if k != "clean")])
        raise SpecRobustError(f"unknown attack {quoted(text)}; known: {known}")
    options = dict(_DEFAULTS[name])
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in options:
            raise SpecRobustError(f"{name} option {quoted(item)} is not one of "
                                  f"{', '.join(k + '=...' for k in options)}")
        options[key] = _option_value(name, key, value.strip())
    if name == "aa" and options["attacks"] and options["version"] != "standard":
        raise SpecRobustError("aa: give either version= or attacks=, not both")
    return AttackSpec(f"{name}:{rest.strip()}" if rest.strip() else name, name, options)


_MOST = {"steps": 100_000, "restarts": 1_000}  # beyond these a typo, not a stronger attack


def _option_value(kind: str, key: str, value: str):
    what = f"{kind} option {key}"
    if key in ("steps", "restarts"):
        return int(check_range(parse_whole(value, what), what, 1, _MOST[key]))
    if key == "alpha":
        return check_range(parse_fraction(value, what), what, 0, 1, low_open=True)
    if key == "random_start":
        if value.lower() not in ("0", "1", "true", "false", "yes", "no"):
            raise SpecRobustError(f"{what} must be 0 or 1, got {quoted(value)}")
        return value.lower() in ("1", "true", "yes")
    choices = {"loss": LOSSES, "band": BANDS, "version": tuple(v for v in AA_VERSIONS
                                                                if v != "custom")}
    if key in choices:
        if value not in choices[key]:
            raise SpecRobustError(f"{what} must be one of {', '.join(choices[key])}, "
                                  f"got {quoted(value)}")
        return value
    # key == "attacks": AutoAttack's attacks joined by "+"
    attacks = tuple(filter(None, value.split("+")))
    unknown = [a for a in attacks if a not in AA_ATTACKS]
    if not attacks or unknown:
        raise SpecRobustError(f"{what} takes attacks from {', '.join(AA_ATTACKS)} joined by +, "
                              f"got {quoted(value)}")
    return attacks
