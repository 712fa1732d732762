import copy

import pytest
import torch

from specrobust import fourier
from specrobust.attacks import autoattack, fgsm, folded_for_attack, pgd
from specrobust.errors import SpecRobustError
from specrobust.evaluation.batched import correct
from trained_models import accuracy

EPS = 8 / 255


@pytest.fixture
def trained(natural_low):
    return natural_low


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_pgd_breaks_a_naturally_trained_model(trained):
    model, x, y = trained
    assert accuracy(model, x, y) > 0.9
    x_adv = pgd(model, x, y, EPS, 2 / 255, 20, generator=_gen())
    assert accuracy(model, x_adv, y) <= 0.2  # from above 90% to a tenth or so
    x_fgsm = fgsm(model, x, y, EPS)
    assert accuracy(model, x_adv, y) <= accuracy(model, x_fgsm, y) < accuracy(model, x, y)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(loss="cw"), dict(norm="l2", eps=0.5), dict(random_start=False),
    dict(mask=fourier.square_lowpass_mask(32, 8)),
])
def test_perturbations_stay_in_the_budget_and_in_range(trained, kwargs):
    model, x, y = trained
    eps = kwargs.pop("eps", EPS)
    norm = kwargs.get("norm", "linf")
    x_adv = pgd(model, x, y, eps, eps / 4, 5, generator=_gen(), **kwargs)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)
    assert size.max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    x_fgsm = fgsm(model, x, y, EPS, random_start=True, generator=_gen())
    assert (x_fgsm - x).abs().max() <= EPS + 1e-6 and x_fgsm.min() >= 0 and x_fgsm.max() <= 1


def test_restarts_never_make_the_attack_weaker(trained):
    model, x, y = trained
    eps = 8 / 255  # with 3 short steps, some examples survive
    one = pgd(model, x, y, eps, eps / 4, 3, restarts=1, generator=_gen(7))
    three = pgd(model, x, y, eps, eps / 4, 3, restarts=3, generator=_gen(7))
    with torch.no_grad():
        survived_three = model(three).argmax(1) == y
        survived_one = model(one).argmax(1) == y
    assert 0 < survived_one.sum() < len(y)
    assert not (survived_three & ~survived_one).any()
    assert survived_three.sum() < survived_one.sum()


def test_targeted_pgd_reaches_its_targets(trained):
    model, x, y = trained
    targets = (y + 1) % 10
    x_adv = pgd(model, x, targets, 16 / 255, 2 / 255, 30, targeted=True, generator=_gen())
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == targets).float().mean() > 0.8


def test_attacks_leave_the_model_as_they_found_it(trained):
    model, x, y = trained
    model = copy.deepcopy(model).train()
    model.net.classifier[1].requires_grad_(False)  # a partly frozen model stays partly frozen
    before = copy.deepcopy(model.state_dict())
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    pgd(model, x[:32], y[:32], EPS, 2 / 255, 3, generator=_gen())
    fgsm(model, x[:32], y[:32], EPS)
    autoattack(model, x[:8], y[:8], EPS, version="custom", attacks=["apgd-ce"])
    assert all(m.training for m in model.modules())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics untouched


@pytest.mark.parametrize("band", ["low", "high"])
def test_band_limited_perturbation_has_no_energy_outside_the_band(trained, band):
    model, x, y = trained
    mask = fourier.default_bands(32)[band]
    x_adv = pgd(model, x, y, EPS, 2 / 255, 10, mask=mask, generator=_gen())
    delta = (x_adv - x).double()
    assert delta.abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    inside = fourier.energy_share(delta, mask)
    # Where the [0, 1] box does not clip, the leak is rounding only (images the box clipped are
    # measured in the next test).
    unclipped = ((x_adv > 0) & (x_adv < 1)).flatten(1).all(1)
    assert unclipped.float().mean() > 0.5
    assert (1 - inside[unclipped]).max() < 1e-6
    assert delta.abs().max() > EPS / 2  # and the attack did use its budget


def test_band_limited_leak_on_saturated_images_is_measured(trained):
    """Where images touch 0 or 1 the [0, 1] box wins over the band. Measure how much leaks."""
    model, x, y = trained
    saturated = x.clone()
    saturated[:, :, :8] = 0.0  # a black stripe, as on Fashion-MNIST backgrounds
    mask = fourier.default_bands(32)["low"]
    x_adv = pgd(model, saturated, y, EPS, 2 / 255, 10, mask=mask, generator=_gen())
    leak = 1 - fourier.energy_share((x_adv - saturated).double(), mask)
    assert (x_adv - saturated).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0
    assert leak.mean() < 0.05  # the box clips a little; measured 0.005 on this model
    print(f"mean out-of-band energy share with a saturated stripe: {leak.mean():.3f}")


def test_apgd_ce_is_at_least_as_strong_as_our_pgd(trained):
    model, x, y = trained
    eps = 6 / 255  # where PGD-20 leaves some examples standing
    ours = accuracy(model, pgd(model, x, y, eps, eps / 4, 20, generator=_gen()), y)
    theirs = accuracy(model, autoattack(model, x, y, eps, version="custom",
                                        attacks=["apgd-ce"]), y)
    assert ours > 0 and theirs <= ours + 0.02
    assert abs(theirs - ours) <= 0.10


def test_autoattack_standard_runs_on_a_handful_of_examples(trained):
    model, x, y = trained
    x_adv = autoattack(model, x[:16], y[:16], EPS, version="standard")
    assert (x_adv - x[:16]).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(model, x_adv, y[:16]) <= 0.1 < accuracy(model, x[:16], y[:16])


def _library_and_staged_runs(model, x, y, eps, **version):
    """AutoAttack through the adapter (one call per attack) and through pyautoattack itself."""
    from pyautoattack import AutoAttack

    heard = []
    ours = autoattack(model, x, y, eps, batch_size=5, seed=3, **version,
                      on_stage=lambda name, still, seconds: heard.append((name, still.clone())))
    library = AutoAttack(model, eps=eps, norm="Linf", seed=3, **version)
    library.verbose = False
    theirs, _ = library.run_standard_evaluation(x, y, batch_size=5)
    return ours, theirs, heard


def test_autoattack_by_stages_equals_one_call_of_the_library(trained):
    """The adapter runs the attacks one call each (to report each one); the result must be what
    pyautoattack's own chained run finds: same examples broken, same images."""
    model, x, y = trained
    x, y, eps = x[:12], y[:12], 5 / 255  # a budget where APGD-CE breaks some, not all
    ours, theirs, heard = _library_and_staged_runs(model, x, y, eps, version="custom",
                                                   attacks=["apgd-ce", "apgd-t"])
    assert torch.equal(ours, theirs)
    assert [name for name, _ in heard] == ["apgd-ce", "apgd-t"]
    left = [int(still.sum()) for _, still in heard]
    assert 0 < left[0] < int(correct(model, x, y).sum()) and left[1] <= left[0]
    assert torch.equal(heard[-1][1], correct(model, ours, y))


@pytest.mark.slow
def test_standard_autoattack_by_stages_equals_the_library(trained):
    model, x, y = trained
    ours, theirs, heard = _library_and_staged_runs(model, x[:16], y[:16], 3 / 255,
                                                   version="standard")
    assert torch.equal(ours, theirs)
    assert [name for name, _ in heard] == ["apgd-ce", "apgd-t", "fab-t", "square"]


def test_bad_attack_arguments():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.rand(2, 3, 2, 2), torch.tensor([0, 1])
    with pytest.raises(SpecRobustError, match="eps"):
        pgd(model, x, y, -0.1, 0.01, 3)
    with pytest.raises(SpecRobustError, match="loss"):
        pgd(model, x, y, 0.1, 0.01, 3, loss="hinge")
    with pytest.raises(SpecRobustError, match=r"\[0, 1\]"):
        pgd(model, x * 3, y, 0.1, 0.01, 3)
    with pytest.raises(SpecRobustError, match="custom"):
        autoattack(model, x, y, 0.1, attacks=["apgd-ce"])


@pytest.mark.parametrize("name", ["cnn_small", "resnet18", "preact_resnet18"])
def test_folded_copy_is_the_same_function_without_batch_norm_after_convs(name):
    from specrobust.models import create_model

    torch.manual_seed(0)
    model = create_model(name, 10, 3)
    with torch.no_grad():  # non-trivial running statistics, so folding has something to do
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    model.train()
    before = copy.deepcopy(model.state_dict())
    folded = folded_for_attack(model)
    assert folded is not model and model.training  # the original is left as it was
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    norms = lambda m: sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())  # noqa: E731
    assert norms(folded) < norms(model)

    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    model.eval()
    reference = model(x)
    (reference_grad,) = torch.autograd.grad(reference[:, 0].sum(), x)
    output = folded(x)
    (grad,) = torch.autograd.grad(output[:, 0].sum(), x)
    assert torch.allclose(output, reference, atol=1e-4, rtol=1e-4)
    assert torch.allclose(grad, reference_grad, atol=1e-4, rtol=1e-3)
    convolutions = [m.weight for m in folded.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
    assert grad.is_contiguous()  # what the attack gets back is laid out as its input was


def test_folding_an_untraceable_model_returns_it_unchanged():
    class DataDependent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.norm = torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)

        def forward(self, x):
            if x.sum() > 0:  # control flow on values: torch.fx cannot trace this
                x = x * 2
            return self.norm(self.conv(x)).flatten(1)

    model = DataDependent()
    assert folded_for_attack(model) is model
