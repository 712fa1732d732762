"""The Python API in the default suite: what `specrobust.evaluate`, `specrobust.analyze` and
`specrobust.SARLoss` return, checked against what they promise."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import specrobust


def _problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 5)).eval()
    images = torch.rand(24, 3, 8, 8)
    with torch.no_grad():
        labels = model(images).argmax(1)
    labels[:6] = (labels[:6] + 1) % 5  # some wrong from the start
    return model, images, labels


def test_evaluate_reports_clean_and_robust_accuracy_per_example():
    model, images, labels = _problem()
    result = specrobust.evaluate(model, images, labels, attacks="clean,pgd20", eps=8 / 255,
                                 checks=False, progress=False)
    assert result.accuracy("clean") == 18 / 24  # the six flipped labels are wrong
    assert result.accuracy("pgd20") <= result.accuracy("clean")
    record = result.as_dict()
    correct = {attack["label"]: attack for attack in record["attacks"]}
    with torch.no_grad():
        right = (model(images).argmax(1) == labels).tolist()
    assert record["per_example"]["clean"] == "".join("1" if r else "0" for r in right)
    assert correct["pgd20"]["accuracy"] == result.accuracy("pgd20")
    # per example: correct under every attack (clean and pgd20), so pgd20's outcomes here
    assert int(result.worst_case.sum()) / 24 == result.accuracy("pgd20") == \
        result.accuracy("worst case")


def test_analyze_returns_each_part_with_its_fields():
    model, images, labels = _problem()
    parts = specrobust.analyze(model, images, labels, parts="kernels,logits", progress=False)
    assert set(parts) == {"kernels", "logits"}
    assert 0 <= parts["kernels"]["high_frequency_share"] <= 1


def test_sar_loss_is_the_authors_formula():
    """lambda * mean |DFT2(adv) - DFT2(clean)| over real and imaginary parts (PAPER.md)."""
    torch.manual_seed(1)
    clean, adversarial = torch.randn(8, 10), torch.randn(8, 10)
    expected = 0.1 * F.l1_loss(torch.view_as_real(torch.fft.fft2(adversarial)),
                               torch.view_as_real(torch.fft.fft2(clean)))
    assert torch.allclose(specrobust.SARLoss(lam=0.1)(clean, adversarial), expected)


def test_a_result_prints_its_accuracies_not_its_tensors():
    model, images, labels = _problem()
    result = specrobust.evaluate(model, images, labels, attacks="clean", checks=False,
                                 progress=False)
    assert repr(result) == "EvalResult(eps=0.03137, n=24: clean 75.00%; worst case 75.00%; " \
                           "0 of 0 self-checks passed)"
