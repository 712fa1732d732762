"""FGSM and PGD (L-inf, L2 as an option), with restarts, C&W loss, targeted mode and an
optional frequency band.

Band-limited PGD. With ``mask`` given, every step applies, in this order:

1. the ascent step (sign of the gradient for L-inf, normalised gradient for L2);
2. projection of the perturbation onto the band: ``fourier.filter(delta, band)`` where ``band``
   is ``fourier.hermitian_symmetric(mask)``, so the projection is exact and real;
3. the eps-ball, by *scaling* each perturbation down until it fits (a clip would spill energy
   out of the band; a scaled band-limited signal stays band-limited);
4. clipping of ``x + delta`` to [0, 1].

All constraints hold exactly in the result. Only step 4 can move energy outside the band, and only
where an image saturates (pixels at 0 or 1): the box wins over the band there, and the tests
measure that leak.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from specrobust import fourier
from specrobust.attacks.registry import (
    AttackKind,
    Option,
    budget_fraction,
    choice,
    flag,
    register,
    whole,
)
from specrobust.errors import SpecRobustError
from specrobust.models import attack_mode
from specrobust.settings import MOST_RESTARTS, MOST_STEPS, check_norm

# The loss an attack ascends: a name (``LOSSES``) or (logits, y) -> per-example values.
Loss = str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# The named losses: cross-entropy and the C&W margin.
LOSSES = ("ce", "cw")


def cw_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example C&W margin ``max_{j != y} z_j - z_y`` (positive once misclassified)."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return others.max(dim=1).values - true


def attack_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str,
                targeted: bool = False) -> torch.Tensor:
    """Per-example loss that the attack *increases*. Targeted: ``labels`` are the targets and
    the loss rewards moving towards them."""
    if loss == "ce":
        value = F.cross_entropy(logits, labels, reduction="none")
    elif loss == "cw":
        value = cw_margin(logits, labels)
    else:
        raise SpecRobustError(f"unknown attack loss {loss!r}; known: {', '.join(LOSSES)}")
    return -value if targeted else value


def _check(x: torch.Tensor | None, eps: float, alpha: float, steps: int, restarts: int,
           norm: str):
    """The arguments in their ranges; ``x`` in [0, 1] unless None (a caller that knows it is:
    the check reads the images back from the device, a wait on every call)."""
    if not eps >= 0:
        raise SpecRobustError(f"eps must be >= 0, got {eps}")
    if not alpha > 0:
        raise SpecRobustError(f"step size alpha must be > 0, got {alpha}")
    if not (1 <= steps <= MOST_STEPS and 1 <= restarts <= MOST_RESTARTS):
        raise SpecRobustError(f"need steps in [1, {MOST_STEPS}] and restarts in [1, "
                              f"{MOST_RESTARTS}], got {steps} and {restarts}")
    check_norm(norm)
    if x is not None and x.numel() and bool(((x < 0) | (x > 1)).any()):
        raise SpecRobustError("attacks take images in [0, 1]; normalisation belongs in the model")


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def project(x: torch.Tensor, delta: torch.Tensor, eps: float, norm: str,
            band: torch.Tensor | None) -> torch.Tensor:
    """Band (if any), then the eps-ball, then the [0, 1] box: the order documented above."""
    if band is not None:
        delta = fourier.filter(delta, band)
    if norm == "linf" and band is not None:
        largest = delta.abs().flatten(1).max(dim=1).values.clamp_min(1e-12)
        delta = delta * (eps / largest).clamp(max=1.0).view(-1, *([1] * (delta.dim() - 1)))
    elif norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _per_example_norm(delta)).clamp(max=1.0)
    return (x + delta).clamp(0, 1) - x


def sample_in_ball(x: torch.Tensor, eps: float, norm: str,
                   generator: torch.Generator | None) -> torch.Tensor:
    """A random start: a uniform draw from the eps-ball (L-inf: each pixel; L2: direction and
    radius)."""
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if norm == "linf":
        return (2 * noise - 1) * eps
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    radius = noise.flatten(1)[:, :1].pow(1.0 / x[0].numel()).view(-1, *([1] * (x.dim() - 1)))
    return direction / _per_example_norm(direction) * eps * radius


def _ascent_direction(gradient: torch.Tensor, norm: str) -> torch.Tensor:
    return gradient.sign() if norm == "linf" else gradient / _per_example_norm(gradient)


def _succeeded(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    predicted = logits.argmax(1)
    return predicted == y if targeted else predicted != y


class _Best:
    """Per-example best adversarial image so far: success first, then the attack's own
    objective (the per-example loss it ascends, already computed for the gradient)."""

    def __init__(self, x: torch.Tensor):
        self.x = x.clone()
        self.success = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        self.score = torch.full((len(x),), float("-inf"), device=x.device)

    def update(self, candidate: torch.Tensor, success: torch.Tensor, score: torch.Tensor):
        better = (success & ~self.success) | ((success == self.success) & (score > self.score))
        # torch.where, not boolean indexing: no host-device sync and no gather/scatter copies.
        self.x = torch.where(better.view(-1, *([1] * (self.x.dim() - 1))), candidate, self.x)
        self.success |= success
        self.score = torch.where(better, score, self.score)


def _projector(x: torch.Tensor, eps: float, norm: str, band: torch.Tensor | None):
    """Maps a candidate image to the nearest allowed one. For plain L-inf the allowed set is
    the box [max(x - eps, 0), min(x + eps, 1)], bounds computed once: one clamp per step
    instead of going through the perturbation (this is the common case, and the hot loop)."""
    if norm == "linf" and band is None:
        lower, upper = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
        return lambda candidate: torch.minimum(torch.maximum(candidate, lower), upper)
    return lambda candidate: x + project(x, candidate - x, eps, norm, band)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    *,
    random_start: bool = True,
    restarts: int = 1,
    loss: Loss = "ce",
    targeted: bool = False,
    norm: str = "linf",
    mask: torch.Tensor | None = None,
    keep_best: bool = True,
    generator: torch.Generator | None = None,
    start: torch.Tensor | None = None,
    mode: str = "eval",
    images_checked: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Projected gradient ascent on ``loss`` within the ``norm`` ball of radius ``eps``.

    Args:
        model: takes images in [0, 1], returns logits.
        x: clean images, float (N, C, H, W) in [0, 1].
        y: their labels (target classes when ``targeted``).
        eps: the radius of the ball.
        alpha: the step size.
        steps: gradient steps per restart.
        random_start: begin at a uniformly random point of the ball (else at ``x``).
        restarts: independent runs; the strongest restart is kept per example, so more
            restarts never make the attack weaker.
        loss: ``"ce"``, ``"cw"`` (the C&W margin) or a function of (logits, y) giving one
            value per example (TRADES' KL, for its training attack).
        targeted: move towards the classes in ``y`` instead of away from them.
        norm: ``"linf"`` or ``"l2"``.
        mask: a Fourier-domain mask the perturbation is restricted to (band-limited attacks).
        keep_best: return, per example, the strongest iterate seen (the final one otherwise,
            as adversarial training uses).
        generator: the random generator for starts (the global one by default).
        start: where the first restart begins (projected into the budget) instead of a random
            or the clean image; the other restarts begin as they would without it.
        mode: the model's mode while attacked, ``"eval"`` or ``"train"`` (batch statistics;
            the training attack's ``attack.generation_mode``).
        images_checked: the caller vouches that ``x`` lies in [0, 1] (the training step:
            checking would wait for the device every step).
        on_step: called after every gradient step with the number of steps taken so far over
            all restarts (for progress bars; it must not wait for the device).

    Returns:
        Detached adversarial images in [0, 1] within the budget.
    """
    _check(None if images_checked else x, eps, alpha, steps, restarts, norm)
    if mode not in ("eval", "train"):
        raise SpecRobustError(f"attack mode must be eval or train, got {mode!r}")
    band = None if mask is None else fourier.hermitian_symmetric(mask.to(x.device))
    x = x.detach()
    allowed = _projector(x, eps, norm, band)
    best = _Best(x)
    with attack_mode(model, training=mode == "train"), torch.enable_grad():
        for restart in range(restarts):
            if start is not None and restart == 0:  # later restarts explore elsewhere
                x_adv = allowed(start.detach())
            else:
                x_adv = allowed(x + (sample_in_ball(x, eps, norm, generator) if random_start
                                     else 0))
            for step in range(steps):
                x_adv.requires_grad_(True)
                logits = model(x_adv)
                objective = _loss(logits, y, loss, targeted)
                (gradient,) = torch.autograd.grad(objective.sum(), x_adv)
                x_adv = x_adv.detach()
                if keep_best:
                    best.update(x_adv, _succeeded(logits.detach(), y, targeted),
                                objective.detach())
                x_adv = allowed(x_adv + alpha * _ascent_direction(gradient, norm))
                if on_step is not None:
                    on_step(restart * steps + step + 1)
            if restarts == 1 and not keep_best:
                return x_adv  # nothing to choose between: skip scoring the last iterate
            with torch.no_grad():
                logits = model(x_adv)
                best.update(x_adv, _succeeded(logits, y, targeted),
                            _loss(logits, y, loss, targeted))
    return best.x


def _loss(logits: torch.Tensor, y: torch.Tensor, loss: Loss, targeted: bool) -> torch.Tensor:
    if callable(loss):
        value = loss(logits, y)
        return -value if targeted else value
    return attack_loss(logits, y, loss, targeted)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    random_start: bool = False,
    alpha: float | None = None,
    loss: str = "ce",
    norm: str = "linf",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One gradient step, projected to the ``eps`` ball and [0, 1].

    The signed gradient for L-inf (FGSM), the L2-normalised one for L2 (the fast gradient
    method).

    Args:
        model: takes images in [0, 1], returns logits.
        x: clean images, float (N, C, H, W) in [0, 1].
        y: their labels.
        eps: the radius of the ball.
        random_start: step from a random point of the ball (FGSM-RS).
        alpha: the step size: ``eps`` by default, ``1.25 * eps`` with a random start (as in
            "Fast is better than free").
        loss: ``"ce"`` or ``"cw"``.
        norm: ``"linf"`` or ``"l2"``.
        generator: the random generator for the start.

    Returns:
        Detached adversarial images.
    """
    step = alpha if alpha is not None else (1.25 * eps if random_start else eps)
    if eps == 0:
        _check(x, eps, 1.0, 1, 1, norm)
        return x.detach().clone()
    _check(x, eps, step, 1, 1, norm)
    x = x.detach()
    delta = sample_in_ball(x, eps, norm, generator) if random_start else torch.zeros_like(x)
    delta = project(x, delta, eps, norm, None)
    with attack_mode(model), torch.enable_grad():
        delta.requires_grad_(True)
        objective = attack_loss(model(x + delta), y, loss).sum()
        (gradient,) = torch.autograd.grad(objective, delta)
    delta = project(x, delta.detach() + step * _ascent_direction(gradient, norm), eps, norm, None)
    return x + delta


# ---- the registry's entries (specrobust.attacks.registry) --------------------------------------


def default_step(eps: float) -> float:
    """PGD's step size when none is given: eps / 4, the paper's 2/255 at 8/255."""
    return eps / 4


def _run_fgsm(model, x, y, options, batch) -> torch.Tensor:
    return fgsm(model, x, y, batch.eps, random_start=options["random_start"],
                alpha=options["alpha"], norm=batch.norm, generator=batch.generator)


def _run_pgd(model, x, y, options, batch) -> torch.Tensor:
    mask = None
    if options["band"] is not None:
        mask = fourier.default_bands(tuple(x.shape[-2:]), device=x.device)[options["band"]]
    return pgd(model, x, y, batch.eps, _step(options, batch.eps), options["steps"],
               random_start=options["random_start"], restarts=options["restarts"],
               loss=options["loss"], norm=batch.norm, mask=mask, generator=batch.generator)


def _step(options: dict, eps: float) -> float:
    return options["alpha"] if options["alpha"] is not None else default_step(eps)


register(AttackKind("fgsm",
                    "one gradient step of size eps (signed for L-inf, L2-normalised for L2)",
                    (Option("random_start", False, flag, "start at a random point of the ball"),
                     Option("alpha", None, budget_fraction,
                            "step size (default eps, 1.25 eps with a random start)")),
                    run=_run_fgsm, gradient_steps=lambda options: 1),
         presets={"fgsm": {}})
register(
    AttackKind("pgd", "projected gradient descent (Madry et al. 2018), the best iterate kept",
               (Option("steps", 20, whole(1, MOST_STEPS), "gradient steps"),
                Option("restarts", 1, whole(1, MOST_RESTARTS), "random restarts"),
                Option("alpha", None, budget_fraction, "step size (default eps/4)"),
                Option("loss", "ce", choice(LOSSES), "cross-entropy or the C&W margin"),
                Option("band", None, choice(fourier.BANDS),
                       "keep the perturbation in one frequency band"),
                Option("random_start", True, flag, "start at a random point of the ball")),
               run=_run_pgd,
               gradient_steps=lambda options: options["steps"] * options["restarts"],
               resolved=lambda options, eps: {**options, "alpha": _step(options, eps)}),
    presets={"pgd20": {"steps": 20},  # the paper's evaluation attack
             "pgd50": {"steps": 50},
             "cw30": {"steps": 30, "loss": "cw"}})  # the paper's C&W-inf
