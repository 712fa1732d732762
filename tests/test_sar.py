import math

import pytest
import torch

from specrobust.errors import SpecRobustError
from specrobust.sar import sar_loss
from specrobust.training.objectives import LossTerms
from specrobust.training.regularizers import SAR


def dft_matrix(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)
    return torch.exp(-2j * math.pi * torch.outer(k, k) / n)


def authors_formula(clean, adversarial):
    """The authors' computation written out: 2-D DFT of the (batch, classes) matrix as
    F_B Z F_C, then L1 over real and imaginary parts, mean over all 2*B*C numbers."""
    b, c = clean.shape
    spectrum = lambda z: dft_matrix(b) @ z.to(torch.complex128) @ dft_matrix(c)  # noqa: E731
    difference = spectrum(adversarial) - spectrum(clean)
    return (difference.real.abs().sum() + difference.imag.abs().sum()) / (2 * b * c)


def test_sar_equals_the_authors_formula_with_gradients():
    torch.manual_seed(0)
    clean = torch.randn(16, 10, dtype=torch.float64, requires_grad=True)
    adversarial = torch.randn(16, 10, dtype=torch.float64, requires_grad=True)
    ours = sar_loss(clean, adversarial)
    reference = authors_formula(clean, adversarial)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    ours_grads = torch.autograd.grad(ours, (clean, adversarial))
    reference_grads = torch.autograd.grad(reference, (clean, adversarial))
    for mine, theirs in zip(ours_grads, reference_grads, strict=True):
        torch.testing.assert_close(mine.double(), theirs, rtol=1e-4, atol=1e-6)


def test_per_example_variant_does_not_depend_on_batching():
    torch.manual_seed(1)
    clean, adversarial = torch.randn(8, 10), torch.randn(8, 10)
    halves = [sar_loss(clean[i:i + 4], adversarial[i:i + 4], axes="class") for i in (0, 4)]
    whole = sar_loss(clean, adversarial, axes="class")
    assert whole.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-5)
    # ... whereas the authors' batch-axis DFT mixes the examples of a batch.
    halves = [sar_loss(clean[i:i + 4], adversarial[i:i + 4]) for i in (0, 4)]
    assert sar_loss(clean, adversarial).item() != pytest.approx(
        sum(h.item() for h in halves) / 2, rel=1e-3)


def test_distances_and_bad_arguments():
    clean, adversarial = torch.randn(4, 10), torch.randn(4, 10)
    assert sar_loss(clean, clean).item() == 0
    for distance in ("l1", "l2", "amplitude"):
        assert sar_loss(clean, adversarial, distance=distance).item() > 0
    with pytest.raises(SpecRobustError):
        sar_loss(clean, adversarial, distance="cosine")
    with pytest.raises(SpecRobustError):
        sar_loss(clean, adversarial, axes="batch")
    with pytest.raises(SpecRobustError):
        sar_loss(clean, adversarial[:2])


class CountingModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 10)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.linear(x)


@pytest.mark.parametrize("with_clean_logits", [False, True])
def test_lambda_and_start_epoch_act_as_configured(with_clean_logits):
    torch.manual_seed(2)
    model, x = CountingModel(), torch.randn(8, 3)
    adv_logits = model(x + 0.1)
    clean_logits = model(x) if with_clean_logits else None
    base = adv_logits.square().mean()
    model.calls = 0
    regulariser = SAR(lam=0.25, start_epoch=3)

    before = regulariser(LossTerms(base, adv_logits, clean_logits), model, x, epoch=2)
    assert before.loss is base and model.calls == 0  # not active before the start epoch

    after = regulariser(LossTerms(base, adv_logits, clean_logits), model, x, epoch=3)
    expected = base + 0.25 * sar_loss(model.linear(x), adv_logits)
    assert after.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # TRADES and MART hand over their clean logits: no extra forward pass then.
    assert model.calls == (0 if with_clean_logits else 1)
    assert SAR(lam=0.0, start_epoch=0)(LossTerms(base, adv_logits), model, x, 5).loss is base


@pytest.mark.parametrize("clean_bn", ["update", "frozen"])
def test_the_clean_pass_moves_the_running_statistics_only_when_asked(clean_bn):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                                torch.nn.Linear(4, 10)).train()
    x = torch.randn(16, 3)
    adv_logits = model(x + 1.0)  # the adversarial pass: its statistics are the AT model's
    after_adversarial = model[1].running_mean.clone()
    terms = SAR(lam=0.1, start_epoch=0, clean_bn=clean_bn)(
        LossTerms(adv_logits.sum(), adv_logits), model, x, epoch=0)
    assert terms.clean_logits is not None and model[1].momentum == 0.1  # restored
    unchanged = torch.equal(model[1].running_mean, after_adversarial)
    assert unchanged == (clean_bn == "frozen")
    # frozen: the clean batch is still normalised by its own statistics (training mode)
    normalised = torch.nn.functional.batch_norm(model[0](x), None, None, model[1].weight,
                                                model[1].bias, training=True)
    manual = model[2](normalised)
    assert torch.allclose(terms.clean_logits, manual, atol=1e-5)


def test_frozen_clean_pass_keeps_a_cumulative_average_norm_exactly():
    """momentum None: the running estimate is an average over batches counted by
    num_batches_tracked; the clean pass must not count as one."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4, momentum=None),
                                torch.nn.Linear(4, 10)).train()
    x = torch.randn(16, 3)
    adv_logits = model(x + 1.0)
    norm = model[1]
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    SAR(lam=0.1, start_epoch=0, clean_bn="frozen")(LossTerms(adv_logits.sum(), adv_logits),
                                                   model, x, epoch=0)
    assert norm.momentum is None
    for name, value in norm.state_dict().items():
        assert torch.equal(value, before[name]), name
