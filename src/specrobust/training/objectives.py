"""Training objectives: natural, PGD-AT (Madry et al. 2018), TRADES (Zhang et al. 2019) and MART
(Wang et al. 2020). Each has two parts, so that AWP can re-use the second on perturbed weights:

    x_adv = objective.adversarial(model, x, y, ctx)   # the training attack (eval mode by default)
    terms = objective.loss(model, x, x_adv, y, ctx)    # in training mode

The training attack is ``attacks.pgd`` itself, with the loss each objective ascends.
``LossTerms`` carries the logits the loss computed, so SAR re-uses TRADES' and MART's clean
logits instead of running another forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from specrobust.attacks.pgd import pgd
from specrobust.models import model_mode
from specrobust.registry import Registry


@dataclass
class StepContext:
    """What a step's objective needs besides the batch."""

    epoch: int
    eps: float
    alpha: float
    steps: int
    random_start: bool = True
    generation_mode: str = "eval"  # the model's mode while the attack runs
    beta: float = 6.0
    generator: torch.Generator | None = None
    norm: str = "linf"  # the training attack's threat model: linf or l2


@dataclass
class LossTerms:
    loss: torch.Tensor
    adv_logits: torch.Tensor | None = None
    clean_logits: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] = field(default_factory=dict)  # for logging


class Objective:
    name = "objective"

    def adversarial(self, model, x, y, ctx: StepContext) -> torch.Tensor | None:
        """The training attack: ``pgd`` on the cross-entropy, its last iterate (the training
        convention: no restarts, no best-iterate bookkeeping)."""
        return _training_pgd(model, x, y, ctx, loss="ce", random_start=ctx.random_start)

    def loss(self, model, x, x_adv, y, ctx: StepContext) -> LossTerms:
        raise NotImplementedError


def _training_pgd(model, x, y, ctx: StepContext, **options) -> torch.Tensor:
    # The loader's images are uint8 / 255, augmented by crops and flips: in [0, 1] by making.
    return pgd(model, x, y, ctx.eps, ctx.alpha, ctx.steps, norm=ctx.norm, keep_best=False,
               mode=ctx.generation_mode, generator=ctx.generator, images_checked=True,
               **options)



# Objectives by name (config ``objective.name``): ``@OBJECTIVES.register()`` above each class.
OBJECTIVES: Registry[type[Objective]] = Registry("objective")

@OBJECTIVES.register()
class Natural(Objective):
    name = "natural"

    def adversarial(self, model, x, y, ctx):
        return None

    def loss(self, model, x, x_adv, y, ctx):
        logits = model(x)
        return LossTerms(F.cross_entropy(logits, y), clean_logits=logits)


@OBJECTIVES.register()
class PGDAT(Objective):
    """Madry et al.: cross-entropy on PGD adversarial examples."""

    name = "pgd_at"

    def loss(self, model, x, x_adv, y, ctx):
        adv_logits = model(x_adv)
        return LossTerms(F.cross_entropy(adv_logits, y), adv_logits=adv_logits)


@OBJECTIVES.register()
class TRADES(Objective):
    """Zhang et al.: CE on clean inputs + beta * KL(clean || adversarial); the attack maximises
    the KL from a small Gaussian start, as the authors' code does."""

    name = "trades"

    def adversarial(self, model, x, y, ctx):
        with model_mode(model, training=ctx.generation_mode == "train"), torch.no_grad():
            clean_probs = F.softmax(model(x), dim=1)
        noise = torch.randn(x.shape, generator=ctx.generator, device=x.device, dtype=x.dtype)
        start = (x + 0.001 * noise).clamp(0, 1)
        return _training_pgd(model, x, y, ctx, start=start, loss=lambda logits, _: F.kl_div(
            F.log_softmax(logits, dim=1), clean_probs, reduction="none").sum(1))

    def loss(self, model, x, x_adv, y, ctx):
        clean_logits = model(x)
        adv_logits = model(x_adv)
        natural = F.cross_entropy(clean_logits, y)
        robust = F.kl_div(F.log_softmax(adv_logits, dim=1), F.softmax(clean_logits, dim=1),
                          reduction="batchmean")
        return LossTerms(natural + ctx.beta * robust, adv_logits, clean_logits,
                         {"natural": natural.detach(), "kl": robust.detach()})


@OBJECTIVES.register()
class MART(Objective):
    """Wang et al.: boosted CE on adversarial examples + beta * KL weighted by how wrong the
    clean prediction is."""

    name = "mart"

    def loss(self, model, x, x_adv, y, ctx):
        adv_logits = model(x_adv)
        clean_logits = model(x)
        adv_probs = F.softmax(adv_logits, dim=1)
        top2 = torch.argsort(adv_probs, dim=1)[:, -2:]
        strongest_wrong = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
        boosted = F.cross_entropy(adv_logits, y) + F.nll_loss(
            torch.log(1.0001 - adv_probs + 1e-12), strongest_wrong)
        clean_probs = F.softmax(clean_logits, dim=1)
        true_probs = clean_probs.gather(1, y[:, None]).squeeze(1)
        kl = F.kl_div(torch.log(adv_probs + 1e-12), clean_probs, reduction="none").sum(1)
        robust = (kl * (1.0000001 - true_probs)).mean()
        return LossTerms(boosted + ctx.beta * robust, adv_logits, clean_logits,
                         {"boosted_ce": boosted.detach(), "weighted_kl": robust.detach()})


def build_objective(name: str) -> Objective:
    return OBJECTIVES[name]()  # an unknown name: one line listing the known ones
