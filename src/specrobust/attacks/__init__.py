"""Attacks: one functional entry point each. Every attack takes images in [0, 1], runs the model
in eval mode, leaves the model as it found it, and returns images in [0, 1] within the budget.

    >>> x_adv = pgd(model, x, y, eps=8/255, alpha=2/255, steps=20)
"""

from specrobust.attacks.autoattack import autoattack
from specrobust.attacks.folded import folded_for_attack
from specrobust.attacks.pgd import attack_loss, cw_margin, fgsm, pgd, project

__all__ = ["attack_loss", "autoattack", "cw_margin", "fgsm", "folded_for_attack", "pgd", "project"]
