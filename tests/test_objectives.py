"""The training objectives pinned as SAR is: TRADES and MART against their papers' formulas
written out independently here (values and gradients), AWP's shift of ``gamma * ||w||`` and
its undoing, and the training attack equal to ``pgd`` with the same random numbers."""

import pytest
import torch
from torch import nn

from specrobust.attacks import pgd
from specrobust.training.objectives import StepContext, build_objective
from specrobust.training.regularizers import AWP

EPS, ALPHA = 8 / 255, 2 / 255


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10))


def _batch(n=12):
    generator = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 8, 8, generator=generator), torch.randint(0, 10, (n,),
                                                                       generator=generator)


def _ctx(steps=3, mode="eval", seed=5, beta=6.0):
    return StepContext(0, EPS, ALPHA, steps, True, mode, beta,
                       torch.Generator().manual_seed(seed))


def _softmax(z):
    e = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def _trades_formula(clean_logits, adv_logits, y, beta):
    """Zhang et al. 2019, eq. 5: CE(f(x), y) + beta * mean_i KL(p(x_i) || p(x'_i))."""
    p, q = _softmax(clean_logits), _softmax(adv_logits)
    ce = -torch.log(p[torch.arange(len(y)), y]).mean()
    kl = (p * (torch.log(p) - torch.log(q))).sum(1).mean()
    return ce + beta * kl


def _mart_formula(clean_logits, adv_logits, y, beta):
    """Wang et al. 2020, eq. 8: BCE(p(x'), y) + beta * mean_i KL(p(x_i) || p(x'_i)) *
    (1 - p_y(x_i)), BCE = -log p_y(x') - log(1 - max_{k != y} p_k(x'))."""
    p, q = _softmax(clean_logits), _softmax(adv_logits)
    rows = torch.arange(len(y))
    others = q.clone()
    others[rows, y] = -1.0
    bce = -torch.log(q[rows, y]) - torch.log(1 - others.max(dim=1).values)
    kl = (p * (torch.log(p) - torch.log(q))).sum(1)
    return bce.mean() + beta * (kl * (1 - p[rows, y])).mean()


@pytest.mark.parametrize("name, formula", [("trades", _trades_formula), ("mart", _mart_formula)])
def test_the_loss_equals_the_papers_formula_with_gradients(name, formula):
    model, (x, y) = _model().train(), _batch()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    x_adv = (x + 0.02 * noise).clamp(0, 1)
    objective, ctx = build_objective(name), _ctx(beta=5.0)

    terms = objective.loss(model, x, x_adv, y, ctx)
    mine = torch.autograd.grad(terms.loss, list(model.parameters()))
    reference_model = _model().train()
    reference = formula(reference_model(x), reference_model(x_adv), y, 5.0)
    theirs = torch.autograd.grad(reference, list(reference_model.parameters()))

    # MART's code adds 1e-12 and 1.0001 / 1.0000001 inside its logs, as the authors' does.
    assert terms.loss.item() == pytest.approx(reference.item(), rel=1e-3)
    for a, b in zip(mine, theirs, strict=True):
        assert torch.allclose(a, b, rtol=2e-3, atol=1e-6)
    assert terms.clean_logits is not None and terms.adv_logits is not None  # SAR re-uses both


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_the_training_attack_is_pgd_with_the_same_random_numbers(mode):
    model, (x, y) = _model(), _batch()
    model.train()
    x_adv = build_objective("pgd_at").adversarial(model, x, y, _ctx(mode=mode))
    expected = pgd(model, x, y, EPS, ALPHA, 3, keep_best=False, mode=mode,
                   generator=torch.Generator().manual_seed(5))
    assert torch.equal(x_adv, expected)
    assert (x_adv - x).abs().max() <= EPS + 1e-7 and not torch.equal(x_adv, x)
    assert model.training  # handed back as it was found
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_trades_attack_ascends_the_kl_from_a_small_gaussian_start():
    model, (x, y) = _model().eval(), _batch()
    x_adv = build_objective("trades").adversarial(model, x, y, _ctx(steps=5))
    with torch.no_grad():
        p, q = _softmax(model(x)), _softmax(model(x_adv))
    kl = (p * (torch.log(p) - torch.log(q))).sum(1)
    assert (x_adv - x).abs().max() <= EPS + 1e-7
    assert kl.mean() > 0 and (kl > 0).float().mean() > 0.9


def test_awp_moves_each_weight_by_gamma_times_its_norm_and_moves_it_back():
    model, (x, y) = _model().train(), _batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    awp = AWP(model, gamma=0.01)
    diff = awp.perturbation(model, lambda m: nn.functional.cross_entropy(m(x), y))
    weights = {n: p for n, p in model.named_parameters() if p.dim() > 1}
    assert set(diff) == set(weights)  # weights only: biases and norm parameters stay
    for name, parameter in weights.items():
        assert diff[name].norm().item() == pytest.approx(0.01 * parameter.norm().item(), rel=1e-4)
    loss_before = nn.functional.cross_entropy(model(x), y).item()
    awp.shift(model, diff, +1)
    assert nn.functional.cross_entropy(model(x), y).item() > loss_before  # uphill
    awp.shift(model, diff, -1)
    after = model.state_dict()
    for key, value in before.items():
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue  # the forward passes above moved batch norm's statistics, not AWP
        assert torch.allclose(after[key], value, atol=1e-7), key
