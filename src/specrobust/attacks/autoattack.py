"""AutoAttack through ``pyautoattack``, the AutoAttack authors' code, packaged.

Versions: ``standard`` (APGD-CE, APGD-T, FAB-T, Square), ``rand`` (APGD-CE and APGD-DLR with
EOT, for randomised defences) and ``custom`` with a chosen list of attacks.

Resuming: pyautoattack 0.2.0 has a ``state_path`` for that, but it cannot resume. It writes the
set of planned attacks as the string of a Python set and compares it with a set on reading
("different set of attacks" on every resume), and a restored run never defines its ``y_adv``
(UnboundLocalError), nor does it keep the adversarial images found before the interruption.
So this adapter does not expose it; resuming a long evaluation belongs to the evaluation layer.
"""

from __future__ import annotations

import torch
from torch import nn

from specrobust.attacks._model_state import attack_mode
from specrobust.errors import SpecRobustError

VERSIONS = ("standard", "rand", "custom")
ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
_NORMS = {"linf": "Linf", "l2": "L2"}


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
) -> torch.Tensor:
    """Adversarial images from AutoAttack (clean ones where it found no adversarial example)."""
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
        x_adv, _ = adversary.run_standard_evaluation(x.detach(), y.detach(),
                                                     batch_size=batch_size)
    return x_adv.detach()

