"""AutoAttack through ``pyautoattack``, the AutoAttack authors' code, packaged.

Versions: ``standard`` (APGD-CE, APGD-T, FAB-T, Square), ``rand`` (APGD-CE and APGD-DLR with
EOT, for randomised defences) and ``custom`` with a chosen list of attacks.

Resuming: pyautoattack 0.2.0 has a ``state_path`` for that, but it cannot resume. It writes the
set of planned attacks as the string of a Python set and compares it with a set on reading
("different set of attacks" on every resume), and a restored run never defines its ``y_adv``
(UnboundLocalError), nor does it keep the adversarial images found before the interruption.
So this adapter does not expose it; resuming a long evaluation belongs to the evaluation layer.

Stages: the version's attacks run one after another, each on the examples that all earlier ones
left correctly classified, exactly as ``run_standard_evaluation`` chains them (same order, same
batches, each attack seeded with ``seed``); this adapter makes one call per attack so that it can
report, through ``on_stage``, how many examples each attack broke and what it cost. That is the
breakdown that tells gradient masking apart: on an honestly robust model the gradient attacks
(APGD-CE, APGD-T) find nearly everything and the black-box Square adds almost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from specrobust.attacks.registry import AttackKind, Option, choice, register
from specrobust.errors import SpecRobustError, quoted
from specrobust.models import attack_mode

VERSIONS = ("standard", "rand", "custom")
ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
_NORMS = {"linf": "Linf", "l2": "L2"}

# (attack name, still correct after it: bool per example of the batch, seconds it took)
StageCallback = Callable[[str, torch.Tensor, float], None]


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    version: str = "standard",
    attacks: list[str] | None = None,
    norm: str = "linf",
    batch_size: int = 250,
    seed: int = 0,
    on_stage: StageCallback | None = None,
) -> torch.Tensor:
    """Adversarial images from AutoAttack, the authors' code (``pyautoattack``).

    Args:
        model: takes images in [0, 1], returns logits.
        x: clean images, float (N, C, H, W) in [0, 1].
        y: their labels.
        eps: the budget.
        version: AutoAttack's ``"standard"`` suite (APGD-CE, APGD-T, FAB-T, Square) or
            ``"custom"`` with ``attacks``.
        attacks: for ``version="custom"``: AutoAttack's attack names, in order.
        norm: ``"linf"`` or ``"l2"``.
        batch_size: images per AutoAttack batch.
        seed: AutoAttack's seed.
        on_stage: called after each of the version's attacks with what it broke (see the
            module's docstring).

    Returns:
        Adversarial images; the clean image where no adversarial example was found.
    """
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise SpecRobustError("AutoAttack needs the pyautoattack package: pip install "
                              "pyautoattack") from None
    if version not in VERSIONS:
        raise SpecRobustError(f"unknown AutoAttack version {version!r}; known: "
                              f"{', '.join(VERSIONS)}")
    if norm not in _NORMS:
        raise SpecRobustError(f"AutoAttack norm must be one of {', '.join(_NORMS)}, got {norm!r}")
    if not eps >= 0:
        raise SpecRobustError(f"eps must be >= 0, got {eps}")
    if version == "custom":
        unknown = sorted(set(attacks or []) - set(ATTACKS))
        if not attacks or unknown:
            raise SpecRobustError(f"custom AutoAttack needs attacks from {', '.join(ATTACKS)}; "
                                  f"got {attacks}")
    elif attacks:
        raise SpecRobustError("attacks can only be chosen with version='custom'")

    with attack_mode(model):
        adversary = AutoAttack(model, attacks=attacks if version == "custom" else None,
                               device=x.device, eps=float(eps), norm=_NORMS[norm], seed=seed,
                               version=version)
        adversary.verbose = False
        stages = list(adversary.attacks_to_run)
        x, y = x.detach(), y.detach()
        x_adv = x.clone()
        with torch.no_grad():
            remaining = (model(x).argmax(1) == y).nonzero().flatten()
        for stage in stages:
            tick = time.perf_counter()
            if len(remaining):
                # The version's settings stay as _set_version left them; only the list shrinks.
                adversary.attacks_to_run = [stage]
                found, _ = adversary.run_standard_evaluation(x[remaining], y[remaining],
                                                             batch_size=batch_size)
                with torch.no_grad():
                    fooled = model(found).argmax(1) != y[remaining]
                x_adv[remaining[fooled]] = found[fooled].detach()
                remaining = remaining[~fooled]
            if on_stage is not None:
                still_correct = torch.zeros(len(x), dtype=torch.bool, device=x.device)
                still_correct[remaining] = True
                on_stage(stage, still_correct, time.perf_counter() - tick)
    return x_adv


# ---- the registry's entry (specrobust.attacks.registry) ----------------------------------------


def _attack_list(text: str, what: str) -> tuple[str, ...]:
    """AutoAttack's attacks joined by ``+``."""
    attacks = tuple(filter(None, text.split("+")))
    unknown = [a for a in attacks if a not in ATTACKS]
    if not attacks or unknown:
        raise SpecRobustError(f"{what} takes attacks from {', '.join(ATTACKS)} joined by +, "
                              f"got {quoted(text)}")
    return attacks


def _check_options(options: dict) -> None:
    if options["attacks"] and options["version"] != "standard":
        raise SpecRobustError("aa: give either version= or attacks=, not both")


def _run(model, x, y, options, batch) -> torch.Tensor:
    version = "custom" if options["attacks"] else options["version"]
    return autoattack(model, x, y, batch.eps, norm=batch.norm, version=version,
                      attacks=list(options["attacks"]) if options["attacks"] else None,
                      batch_size=len(x), seed=batch.seed, on_stage=batch.on_stage)


def _recorded(options: dict, eps: float) -> dict:
    return {**options, "attacks": list(options["attacks"])} if options["attacks"] else \
        dict(options)


register(AttackKind(
    "aa", "AutoAttack (Croce and Hein 2020), the authors' code: the standard version runs "
          "APGD-CE, APGD-T, FAB-T and Square", (
        Option("version", "standard", choice(tuple(v for v in VERSIONS if v != "custom")),
               "standard or rand"),
        Option("attacks", None, _attack_list, "a custom list, e.g. apgd-ce+apgd-t")),
    run=_run, gradient_steps=lambda options: None, check=_check_options, resolved=_recorded),
    presets={"aa": {}, "aa-apgd-ce": {"attacks": ("apgd-ce",)}})
