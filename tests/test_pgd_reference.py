"""PGD against a reference written from its definition (Madry et al. 2018), step by step: the
fast paths of ``attacks/pgd.py`` (batched projections, the best iterate kept, restarts) must
compute exactly what the ten-line textbook loop computes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from specrobust.attacks import pgd


def _reference(model, x, y, eps, alpha, steps, norm, start):
    """Gradient ascent on the summed cross-entropy from ``start``; each step projected into the
    eps-ball around ``x``, then into [0, 1]. Returns every iterate."""
    x_adv, iterates = start.clone(), []
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (gradient,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y, reduction="sum"),
                                          x_adv)
        if norm == "linf":
            x_adv = x_adv.detach() + alpha * gradient.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
        else:
            length = gradient.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = x_adv.detach() + alpha * gradient / length - x
            size = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            x_adv = x + delta * (eps / size).clamp(max=1.0)
        x_adv = x_adv.clamp(0, 1)
        iterates.append(x_adv.detach())
    return iterates


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 32), torch.nn.Tanh(),
                                torch.nn.Linear(32, 4)).eval()
    x = torch.rand(16, 3, 4, 4)
    return model, x, model(x).argmax(1).detach()


@pytest.mark.parametrize("norm, eps, alpha", [("linf", 8 / 255, 2 / 255), ("l2", 0.5, 0.125)])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_pgd_follows_the_reference_step_by_step(problem, norm, eps, alpha, steps):
    model, x, y = problem
    start = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1) if norm == "linf" else x
    iterates = _reference(model, x, y, eps, alpha, steps, norm, start)
    last = pgd(model, x, y, eps, alpha, steps, norm=norm, start=start, keep_best=False)
    assert torch.allclose(last, iterates[-1], atol=1e-6)
    # Kept best: per image, the iterate with the highest loss among those seen (the start
    # excluded, the final one included), or a misclassified one.
    best = pgd(model, x, y, eps, alpha, steps, norm=norm, start=start)
    with torch.no_grad():
        losses = torch.stack([F.cross_entropy(model(i), y, reduction="none") for i in iterates])
        chosen = F.cross_entropy(model(best), y, reduction="none")
    assert torch.all(chosen >= losses.max(0).values - 1e-5)


def test_restarts_after_a_given_start_begin_elsewhere(problem):
    model, x, y = problem
    starts = []

    class Watching(torch.nn.Module):
        def forward(self, images):
            if images.requires_grad and len(starts) < 3 and (
                    not starts or not torch.equal(images, starts[-1])):
                starts.append(images.detach().clone())
            return model(images)

    given = (x + 4 / 255).clamp(0, 1)
    pgd(Watching(), x, y, 8 / 255, 2 / 255, 1, start=given, restarts=3,
        generator=torch.Generator().manual_seed(0))
    assert len(starts) == 3 and torch.equal(starts[0], given)
    assert not torch.equal(starts[1], given) and not torch.equal(starts[1], starts[2])


def test_more_restarts_never_weaken_the_attack(problem):
    """The first of three restarts draws what a single run draws (one seeded generator): every
    image fooled by one run is fooled by three, and the others' loss is at least as high."""
    model, x, y = problem

    def attacked(restarts):
        images = pgd(model, x, y, 8 / 255, 2 / 255, 3, restarts=restarts,
                     generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            logits = model(images)
        return logits.argmax(1) != y, F.cross_entropy(logits, y, reduction="none")

    (fooled_one, loss_one), (fooled_three, loss_three) = attacked(1), attacked(3)
    assert torch.all(fooled_three | ~fooled_one)
    assert torch.all(fooled_three | (loss_three >= loss_one - 1e-6))
