"""Training objectives: natural, PGD-AT (Madry et al. 2018), TRADES (Zhang et al. 2019) and MART
(Wang et al. 2020). Each has two parts, so that AWP can re-use the second on perturbed weights:

    x_adv = objective.adversarial(model, x, y, ctx)   # the training attack (eval mode by default)
    terms = objective.loss(model, x, x_adv, y, ctx)    # in training mode

``objective(model, x, y, ctx)`` does both. ``LossTerms`` carries the logits the loss computed, so
SAR re-uses TRADES' and MART's clean logits instead of running another forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from specrobust.attacks.pgd import project, sample_in_ball
from specrobust.errors import SpecRobustError


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


def _attack(model: nn.Module, x: torch.Tensor, ctx: StepContext, start: torch.Tensor,
            loss_of_logits) -> torch.Tensor:
    """PGD ascent on ``loss_of_logits`` from ``start`` in the ``ctx.norm`` ball; returns the
    last iterate (the training convention: no restarts, no best-iterate bookkeeping)."""
    was_training = model.training
    model.train(ctx.generation_mode == "train")
    x_adv = start.detach()
    try:
        with torch.enable_grad():
            for _ in range(ctx.steps):
                x_adv.requires_grad_(True)
                (gradient,) = torch.autograd.grad(loss_of_logits(model(x_adv)), x_adv)
                if ctx.norm == "linf":
                    x_adv = x_adv.detach() + ctx.alpha * gradient.sign()
                    x_adv = torch.min(torch.max(x_adv, x - ctx.eps), x + ctx.eps).clamp(0, 1)
                else:  # L2: a step along the normalised gradient, back into the ball
                    step = gradient / gradient.flatten(1).norm(dim=1).clamp_min(1e-12).view(
                        -1, *([1] * (x.dim() - 1)))
                    x_adv = x + project(x, x_adv.detach() + ctx.alpha * step - x, ctx.eps, "l2",
                                        None)
    finally:
        model.train(was_training)
    return x_adv.detach()


def _uniform_start(x: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    if not ctx.random_start:
        return x
    if ctx.norm == "l2":
        return x + project(x, sample_in_ball(x, ctx.eps, "l2", ctx.generator), ctx.eps, "l2",
                           None)
    noise = torch.rand(x.shape, generator=ctx.generator, device=x.device, dtype=x.dtype)
    return (x + (2 * noise - 1) * ctx.eps).clamp(0, 1)


class Objective:
    name = "objective"
    uses_clean_logits = False  # whether loss() computes clean logits SAR can re-use

    def adversarial(self, model, x, y, ctx: StepContext) -> torch.Tensor | None:
        return _attack(model, x, ctx, _uniform_start(x, ctx),
                       lambda logits: F.cross_entropy(logits, y, reduction="sum"))

    def loss(self, model, x, x_adv, y, ctx: StepContext) -> LossTerms:
        raise NotImplementedError

    def __call__(self, model, x, y, ctx: StepContext) -> LossTerms:
        return self.loss(model, x, self.adversarial(model, x, y, ctx), y, ctx)


class Natural(Objective):
    name = "natural"
    uses_clean_logits = True

    def adversarial(self, model, x, y, ctx):
        return None

    def loss(self, model, x, x_adv, y, ctx):
        logits = model(x)
        return LossTerms(F.cross_entropy(logits, y), clean_logits=logits)


class PGDAT(Objective):
    """Madry et al.: cross-entropy on PGD adversarial examples."""

    name = "pgd_at"

    def loss(self, model, x, x_adv, y, ctx):
        adv_logits = model(x_adv)
        return LossTerms(F.cross_entropy(adv_logits, y), adv_logits=adv_logits)


class TRADES(Objective):
    """Zhang et al.: CE on clean inputs + beta * KL(clean || adversarial); the attack maximises
    the KL from a small Gaussian start, as the authors' code does."""

    name = "trades"
    uses_clean_logits = True

    def adversarial(self, model, x, y, ctx):
        was_training = model.training
        model.train(ctx.generation_mode == "train")
        with torch.no_grad():
            clean_probs = F.softmax(model(x), dim=1)
        model.train(was_training)
        noise = torch.randn(x.shape, generator=ctx.generator, device=x.device, dtype=x.dtype)
        start = (x + 0.001 * noise).clamp(0, 1)
        return _attack(model, x, ctx, start, lambda logits: F.kl_div(
            F.log_softmax(logits, dim=1), clean_probs, reduction="sum"))

    def loss(self, model, x, x_adv, y, ctx):
        clean_logits = model(x)
        adv_logits = model(x_adv)
        natural = F.cross_entropy(clean_logits, y)
        robust = F.kl_div(F.log_softmax(adv_logits, dim=1), F.softmax(clean_logits, dim=1),
                          reduction="batchmean")
        return LossTerms(natural + ctx.beta * robust, adv_logits, clean_logits,
                         {"natural": natural.detach(), "kl": robust.detach()})


class MART(Objective):
    """Wang et al.: boosted CE on adversarial examples + beta * KL weighted by how wrong the
    clean prediction is."""

    name = "mart"
    uses_clean_logits = True

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


OBJECTIVES = {cls.name: cls for cls in (Natural, PGDAT, TRADES, MART)}


def build_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise SpecRobustError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]()
